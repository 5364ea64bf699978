package conformance

import (
	"time"

	"github.com/purista-go/purista"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
)

// The suite relies on the contract of EchoService (a 3 s timeout on Sleep,
// Count idempotent). When the generated purista code for it is not linked
// in, describe it here.
func init() {
	if _, ok := purista.LookupService(testingv1.EchoService_ServiceDesc.ServiceName); ok {
		return
	}
	name := testingv1.EchoService_ServiceDesc.ServiceName
	_ = purista.RegisterService(&purista.Service{
		Name:         name,
		RequestTopic: purista.DefaultRequestTopic(name),
		Partitions:   3,
		Methods: []*purista.Method{
			{Name: "Echo", FullMethod: testingv1.EchoService_Echo_FullMethodName},
			{Name: "Fail", FullMethod: testingv1.EchoService_Fail_FullMethodName},
			{Name: "Sleep", FullMethod: testingv1.EchoService_Sleep_FullMethodName, Timeout: 3 * time.Second},
			{Name: "Panic", FullMethod: testingv1.EchoService_Panic_FullMethodName},
			{Name: "Count", FullMethod: testingv1.EchoService_Count_FullMethodName, Idempotent: true},
		},
	})
}
