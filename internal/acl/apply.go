package acl

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Result says what Apply did with one ACL.
type Result struct {
	ACL
	// Existed is true when the cluster had the binding already.
	Existed bool
	// Err is why the broker refused to create it.
	Err error
}

// Apply creates the ACLs the cluster does not have yet through the admin
// API (DescribeAcls, then one CreateAcls for the missing ones), so that
// running it again changes nothing. It deletes nothing. cl must
// authenticate as a principal allowed to describe and create ACLs (ALTER
// and DESCRIBE on the cluster, or a super user).
func Apply(ctx context.Context, cl *kgo.Client, acls []ACL) ([]Result, error) {
	have, err := existing(ctx, cl)
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(acls))
	req := kmsg.NewPtrCreateACLsRequest()
	var pending []int
	for i, a := range acls {
		results[i] = Result{ACL: a, Existed: have[a.key()]}
		if results[i].Existed {
			continue
		}
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourcePatternType, c.Operation = resourceType(a.Resource), patternType(a.Pattern), operation(a.Operation)
		c.ResourceName, c.Principal, c.Host = a.Name, a.Principal, "*"
		c.PermissionType = kmsg.ACLPermissionTypeAllow
		req.Creations = append(req.Creations, c)
		pending = append(pending, i)
	}
	if len(pending) == 0 {
		return results, nil
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("acl: create ACLs: %w", explain(err))
	}
	if len(resp.Results) != len(pending) {
		return nil, fmt.Errorf("acl: create ACLs: the broker answered %d results for %d ACLs", len(resp.Results), len(pending))
	}
	var errs []error
	for k, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			err = explain(err)
			if m := r.ErrorMessage; m != nil && *m != "" && !strings.Contains(err.Error(), *m) {
				err = fmt.Errorf("%w: %s", err, *m) // the broker's words, when they add something
			}
			err = fmt.Errorf("acl: create %s: %w", acls[pending[k]], err)
			results[pending[k]].Err = err
			errs = append(errs, err)
		}
	}
	return results, errors.Join(errs...)
}

// existing returns the keys of every ALLOW binding for any host on
// topics and groups.
func existing(ctx context.Context, cl *kgo.Client) (map[string]bool, error) {
	have := map[string]bool{}
	for _, rt := range []ResourceType{Topic, Group} {
		req := kmsg.NewPtrDescribeACLsRequest()
		req.ResourceType = resourceType(rt)
		req.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
		req.Operation = kmsg.ACLOperationAny
		req.PermissionType = kmsg.ACLPermissionTypeAllow
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err != nil {
			return nil, fmt.Errorf("acl: describe the cluster's ACLs: %w", explain(err))
		}
		for _, r := range resp.Resources {
			for _, a := range r.ACLs {
				if a.Host != "*" || a.PermissionType != kmsg.ACLPermissionTypeAllow {
					continue
				}
				acl := ACL{Principal: a.Principal, Resource: rt, Name: r.ResourceName, Operation: fromOperation(a.Operation)}
				switch r.ResourcePatternType {
				case kmsg.ACLResourcePatternTypeLiteral:
					acl.Pattern = Literal
				case kmsg.ACLResourcePatternTypePrefixed:
					acl.Pattern = Prefixed
				default:
					continue
				}
				have[acl.key()] = true
			}
		}
	}
	return have, nil
}

// explain adds what to do to the errors an operator meets here.
func explain(err error) error {
	switch {
	case errors.Is(err, kerr.SecurityDisabled):
		return fmt.Errorf("%w (the cluster has no authorizer: set authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer on the brokers)", err)
	case errors.Is(err, kerr.ClusterAuthorizationFailed):
		return fmt.Errorf("%w (authenticate as a super user or a principal with ALTER and DESCRIBE on the cluster)", err)
	}
	return err
}

func resourceType(r ResourceType) kmsg.ACLResourceType {
	if r == Group {
		return kmsg.ACLResourceTypeGroup
	}
	return kmsg.ACLResourceTypeTopic
}

func patternType(p PatternType) kmsg.ACLResourcePatternType {
	if p == Prefixed {
		return kmsg.ACLResourcePatternTypePrefixed
	}
	return kmsg.ACLResourcePatternTypeLiteral
}

var operations = map[Operation]kmsg.ACLOperation{
	Read: kmsg.ACLOperationRead, Write: kmsg.ACLOperationWrite,
	Create: kmsg.ACLOperationCreate, Delete: kmsg.ACLOperationDelete,
}

func operation(o Operation) kmsg.ACLOperation { return operations[o] }

func fromOperation(o kmsg.ACLOperation) Operation {
	for k, v := range operations {
		if v == o {
			return k
		}
	}
	return Operation(o.String())
}
