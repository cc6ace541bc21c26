package demo_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/billing-exporter/billing_exporter/internal/demo"
	"github.com/billing-exporter/billing_exporter/internal/plans"
)

func TestPlans(t *testing.T) {
	src, err := demo.Plans()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := src.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for id, p := range cat.Plans {
		names[id] = p.Name
	}
	if want := map[string]string{"1": "starter", "2": "pro", "3": "enterprise"}; !reflect.DeepEqual(names, want) {
		t.Errorf("plans %v, want %v", names, want)
	}
	if _, limited := cat.Plans["3"].Limits["messages"]; limited {
		t.Error("enterprise has a messages limit; want unlimited")
	}
	if len(cat.Tenants) != 50 {
		t.Errorf("%d tenants, want 50", len(cat.Tenants))
	}
	perPlan := map[string]int{}
	for id, plan := range cat.Tenants {
		perPlan[plan]++
		if plan == "" && id != "48" && id != "49" && id != "50" {
			t.Errorf("tenant %s has no plan; only 48, 49 and 50 should not", id)
		}
	}
	if perPlan[""] != 3 || perPlan["1"] == 0 || perPlan["2"] == 0 || perPlan["3"] == 0 {
		t.Errorf("tenants per plan %v: want some on every plan and 3 on none", perPlan)
	}
	defaults, ok := src.Defaults()
	if want := (plans.Limits{"messages": 1000, "storage": 104857600, "users": 2, "whatsappSessions": 1}); !ok || !reflect.DeepEqual(defaults, want) {
		t.Errorf("defaults %v, %v; want %v", defaults, ok, want)
	}
}
