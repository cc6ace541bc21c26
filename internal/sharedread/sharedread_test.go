package sharedread

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestConcurrentCallersShareOneRead(t *testing.T) {
	var g Group[int]
	var reads atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{})
	read := func(ctx context.Context) (int, error) {
		if reads.Add(1) == 1 {
			close(started)
		}
		<-release
		return 42, nil
	}
	const callers = 8
	var wg sync.WaitGroup
	results := make(chan int, callers)
	wg.Add(1)
	go func() {
		defer wg.Done()
		v, _ := g.Do(context.Background(), read)
		results <- v
	}()
	<-started
	for i := 1; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _ := g.Do(context.Background(), read)
			results <- v
		}()
	}
	// Wait until every caller has joined the read in flight.
	for {
		g.mu.Lock()
		refs := g.call.refs
		g.mu.Unlock()
		if refs == callers {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != 42 {
			t.Errorf("result %d, want 42", v)
		}
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("%d reads for %d concurrent callers, want 1", n, callers)
	}
	// A later call starts a new read.
	if _, err := g.Do(context.Background(), func(context.Context) (int, error) { reads.Add(1); return 1, nil }); err != nil {
		t.Fatal(err)
	}
	if n := reads.Load(); n != 2 {
		t.Errorf("reads = %d after a later call, want 2", n)
	}
}

func TestReadCancelledWhenEveryCallerLeaves(t *testing.T) {
	var g Group[int]
	readCancelled := make(chan error, 1)
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	started := make(chan struct{})
	read := func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		readCancelled <- ctx.Err()
		return 0, ctx.Err()
	}
	errs := make(chan error, 2)
	go func() { _, err := g.Do(ctx1, read); errs <- err }()
	<-started
	go func() { _, err := g.Do(ctx2, read); errs <- err }()
	for {
		g.mu.Lock()
		refs := g.call.refs
		g.mu.Unlock()
		if refs == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel1()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller err = %v", err)
	}
	select {
	case <-readCancelled:
		t.Fatal("read cancelled while a caller still waits")
	case <-time.After(50 * time.Millisecond):
	}
	cancel2()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("second caller err = %v", err)
	}
	if err := <-readCancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("read ctx err = %v, want canceled", err)
	}
}

func TestReadCarriesFirstCallersDeadline(t *testing.T) {
	var g Group[bool]
	deadline := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	got, err := g.Do(ctx, func(ctx context.Context) (bool, error) {
		dl, ok := ctx.Deadline()
		return ok && dl.Equal(deadline), nil
	})
	if err != nil || !got {
		t.Errorf("read context lacks the caller's deadline (got %v, err %v)", got, err)
	}
}

// TestImpatientCallerDoesNotCutShortTheRead: a caller with a short
// deadline starts the read, a patient caller joins; the impatient one
// leaves at its deadline, and the read runs on under the patient caller's
// deadline and hands it the result.
func TestImpatientCallerDoesNotCutShortTheRead(t *testing.T) {
	var g Group[int]
	started, release := make(chan struct{}), make(chan struct{})
	var readCtx context.Context
	read := func(ctx context.Context) (int, error) {
		readCtx = ctx
		close(started)
		select {
		case <-release:
			return 42, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	impatient, cancelImpatient := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelImpatient()
	impatientErr := make(chan error, 1)
	go func() {
		_, err := g.Do(impatient, read)
		impatientErr <- err
	}()
	<-started
	patient, cancelPatient := context.WithTimeout(context.Background(), time.Minute)
	defer cancelPatient()
	patientDeadline, _ := patient.Deadline()
	result := make(chan int, 1)
	go func() {
		v, err := g.Do(patient, read)
		if err != nil {
			t.Errorf("patient caller: %v", err)
		}
		result <- v
	}()
	// Once the patient caller has joined, the read's deadline is its.
	for {
		if dl, ok := readCtx.Deadline(); ok && dl.Equal(patientDeadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := <-impatientErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient caller: %v, want its own deadline", err)
	}
	// The impatient caller's deadline has passed and it has left: the read
	// goes on.
	if err := readCtx.Err(); err != nil {
		t.Fatalf("read cancelled when the impatient caller left: %v", err)
	}
	close(release)
	if v := <-result; v != 42 {
		t.Errorf("patient caller got %d, want 42", v)
	}
}

// TestAfterFuncOnTheRead: context.AfterFunc on the read's context runs the
// registered functions once the read ends (here: every caller left), not
// the stopped one, and costs no goroutine per registration while it runs
// (a Redis connection registers one per command it sends).
func TestAfterFuncOnTheRead(t *testing.T) {
	var g Group[int]
	const registrations = 200
	ran := make(chan int, registrations+1)
	registered := make(chan int, 1)
	read := func(ctx context.Context) (int, error) {
		before := runtime.NumGoroutine()
		for i := range registrations {
			stop := context.AfterFunc(ctx, func() { ran <- i })
			if i == 0 && !stop() {
				t.Error("stop before the end: false, want true")
			}
		}
		registered <- runtime.NumGoroutine() - before
		<-ctx.Done()
		return 0, ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() { _, err := g.Do(ctx, read); errs <- err }()
	if extra := <-registered; extra >= registrations/2 {
		t.Errorf("%d goroutines more after %d registrations, want none per registration", extra, registrations)
	}
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("caller: %v", err)
	}
	seen := map[int]bool{}
	for range registrations - 1 {
		seen[<-ran] = true
	}
	if seen[0] || len(seen) != registrations-1 {
		t.Errorf("ran %d distinct functions (the stopped one: %v), want %d without it", len(seen), seen[0], registrations-1)
	}
}

// TestSealedReadIsNotJoined checks that a caller arriving before a read
// seals itself shares it, and one arriving after gets a read of its own
// (started while the sealed one still runs), whose seal a third caller
// arriving before it is sealed shares in turn. Through a context derived
// from the read's, as the stores get it.
func TestSealedReadIsNotJoined(t *testing.T) {
	var g Group[int]
	var reads atomic.Int32
	seal := make(chan struct{})    // the first read seals when closed
	sealed := make(chan struct{})  // closed once it has
	release := make(chan struct{}) // the reads return when closed
	secondStarted := make(chan struct{})
	read := func(ctx context.Context) (int, error) {
		n := reads.Add(1)
		if n == 1 {
			<-seal
			derived, cancel := context.WithCancel(context.WithValue(ctx, struct{ k int }{1}, "v"))
			Seal(derived)
			cancel()
			close(sealed)
		} else {
			close(secondStarted)
		}
		<-release
		return int(n), nil
	}
	results := make(chan [2]int, 4)
	call := func(who int) {
		v, err := g.Do(context.Background(), read)
		if err != nil {
			t.Error(err)
		}
		results <- [2]int{who, v}
	}
	waitRefs := func(n int) {
		for g.Waiters() != n {
			time.Sleep(time.Millisecond)
		}
	}
	go call(1)
	waitRefs(1)
	go call(2) // before the seal: shares read 1
	waitRefs(2)
	close(seal)
	<-sealed
	if n := g.Waiters(); n != 0 {
		t.Fatalf("a sealed read is still offered to callers (%d waiters)", n)
	}
	go call(3) // after the seal: read 2
	<-secondStarted
	go call(4) // read 2 has not sealed: shares it
	waitRefs(2)
	close(release)
	want := map[int]int{1: 1, 2: 1, 3: 2, 4: 2}
	for range 4 {
		r := <-results
		if r[1] != want[r[0]] {
			t.Errorf("caller %d got read %d, want %d", r[0], r[1], want[r[0]])
		}
	}
	if n := reads.Load(); n != 2 {
		t.Errorf("%d reads, want 2", n)
	}
	Seal(context.Background()) // no shared read: nothing happens
}

// TestCallerHoldsTheSealedReadsItWaitsBehind: a caller that arrives after
// a read sealed itself gets a later read, but holds the sealed one as if it
// had joined it: its deadline moves to the caller's, and it is not
// cancelled when its own callers leave (a store runs the later read after
// it, so cancelling it would fail what the caller waits for).
func TestCallerHoldsTheSealedReadsItWaitsBehind(t *testing.T) {
	var g Group[int]
	var reads atomic.Int32
	sealed, release := make(chan struct{}), make(chan struct{})
	firstDone := make(chan struct{})
	var firstCtx context.Context
	read := func(ctx context.Context) (int, error) {
		n := reads.Add(1)
		if n == 1 {
			firstCtx = ctx
			Seal(ctx)
			close(sealed)
			select {
			case <-release:
			case <-ctx.Done():
			}
			close(firstDone)
			return 1, ctx.Err()
		}
		<-firstDone // as a Redis mirror runs one read at a time
		return int(n), nil
	}
	now := time.Now()
	ctxA, cancelA := context.WithDeadline(context.Background(), now.Add(time.Hour))
	aDone := make(chan error, 1)
	go func() { _, err := g.Do(ctxA, read); aDone <- err }()
	<-sealed
	ctxB, cancelB := context.WithDeadline(context.Background(), now.Add(2*time.Hour))
	defer cancelB()
	bDone := make(chan [2]any, 1)
	go func() { v, err := g.Do(ctxB, read); bDone <- [2]any{v, err} }()
	for reads.Load() != 2 {
		time.Sleep(time.Millisecond)
	}
	if dl, _ := firstCtx.Deadline(); !dl.Equal(now.Add(2 * time.Hour)) {
		t.Errorf("sealed read's deadline %v, want the later caller's %v", dl, now.Add(2*time.Hour))
	}
	cancelA()
	if err := <-aDone; !errors.Is(err, context.Canceled) {
		t.Errorf("first caller: %v, want its own cancellation", err)
	}
	if err := firstCtx.Err(); err != nil {
		t.Fatalf("the sealed read was cancelled (%v) while a caller waited behind it", err)
	}
	close(release)
	r := <-bDone
	if r[0] != 2 || r[1] != nil {
		t.Errorf("second caller got %v, %v; want the second read's 2, nil", r[0], r[1])
	}
	g.mu.Lock()
	left := len(g.sealed)
	g.mu.Unlock()
	if left != 0 {
		t.Errorf("%d sealed reads still held after every read ended", left)
	}
}
