package conformance

import (
	"github.com/purista-go/purista"
	eventsv1 "github.com/purista-go/purista/gen/purista/testing/events/v1"
	streamv1 "github.com/purista-go/purista/gen/purista/testing/stream/v1"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
)

// Contracts returns the contracts of every service the suites serve and
// call. An Env hands them to each client and server it makes, as a main
// hands its transports the contracts of its services.
func Contracts() []*purista.Service {
	return []*purista.Service{
		testingv1.EchoService_PuristaService,
		streamv1.StreamService_PuristaService,
		eventsv1.OrdersService_PuristaService,
		eventsv1.InventoryService_PuristaService,
		eventsv1.BillingService_PuristaService,
	}
}
