package acl_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
	orders := client("orders", "orders-pw")
	if _, err := acl.Apply(ctx, orders, acls); err == nil {
		t.Error("apply as User:orders succeeded; want a cluster authorization error")
	} else {
		t.Logf("apply as User:orders: %v", err)
	}

	// User:orders may now read the cluster's ACLs but not create any: the
	// refusal is the ACL's own result, and Apply's error.
	grant := kmsg.NewPtrCreateACLsRequest()
	g := kmsg.NewCreateACLsRequestCreation()
	g.ResourceType, g.ResourceName, g.ResourcePatternType = kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLResourcePatternTypeLiteral
	g.Principal, g.Host, g.Operation, g.PermissionType = "User:orders", "*", kmsg.ACLOperationDescribe, kmsg.ACLPermissionTypeAllow
	grant.Creations = append(grant.Creations, g)
	if resp, err := grant.RequestWith(ctx, admin); err != nil || resp.Results[0].ErrorCode != 0 {
		t.Fatalf("grant DESCRIBE on the cluster to User:orders: %v %+v", err, resp)
	}
	fresh := acls[0]
	fresh.Principal = "User:newcomer"
	res, err := acl.Apply(ctx, orders, []acl.ACL{fresh})
	if err == nil || len(res) != 1 || res[0].Err == nil || res[0].Existed {
		t.Fatalf("apply of a new ACL as User:orders = %+v, %v; want the ACL's own error and Apply's", res, err)
	}
	t.Logf("refused: %v", res[0].Err)
}
