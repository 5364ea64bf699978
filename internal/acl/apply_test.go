package acl_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/purista-go/purista/examples/contracts"
	"github.com/purista-go/purista/internal/acl"
)

// TestApplyIdempotent applies the example plan to a broker with ACLs (the
// embedded kfake): the first run creates every ACL, the second finds them
// all, and a principal without rights to change ACLs is refused.
func TestApplyIdempotent(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-512", "admin", "admin-pw"),
		kfake.User("SCRAM-SHA-512", "orders", "orders-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client := func(user, pass string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	acls, err := acl.Plan(contracts.Services(), contracts.Events(), exampleConfig(""))
	if err != nil {
		t.Fatal(err)
	}
	admin := client("admin", "admin-pw")
	for run, wantExisted := range []bool{false, true} {
		res, err := acl.Apply(ctx, admin, acls)
		if err != nil {
			t.Fatalf("apply #%d: %v", run+1, err)
		}
		if len(res) != len(acls) {
			t.Fatalf("apply #%d: %d results for %d ACLs", run+1, len(res), len(acls))
		}
		for _, r := range res {
			if r.Existed != wantExisted {
				t.Errorf("apply #%d: %s existed=%v, want %v", run+1, r.ACL, r.Existed, wantExisted)
			}
		}
	}
	if _, err := acl.Apply(ctx, client("orders", "orders-pw"), acls); err == nil {
		t.Error("apply as User:orders succeeded; want a cluster authorization error")
	} else {
		t.Logf("apply as User:orders: %v", err)
	}
}
