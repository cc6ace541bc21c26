-- Reference schema of the plans database that billing_exporter's default
-- plans query reads (see docs/plans-query.md). A NULL max_* column means
-- that metric type is unlimited on the plan; tenants.plan_id IS NULL means
-- the tenant has no active plan and default limits apply.
CREATE TABLE plans   (id bigint PRIMARY KEY, name text NOT NULL,
                      max_messages bigint, max_storage_bytes bigint,
                      max_users bigint, max_whatsapp_sessions bigint);
CREATE TABLE tenants (id bigint PRIMARY KEY, name text, plan_id bigint REFERENCES plans(id));
