// Package contracts lists every contract of the example system: Services
// and Events return the generated descriptions of the users, orders and
// notifications services and the OrderPlaced event (their routes, topics,
// timeouts and subscriptions), to hand to transports, the gateway and
// tools, and OpenAPI is the merged OpenAPI v2 document of all of them, as
// protoc-gen-openapiv2 wrote it. It is a convenience: nothing in purista
// needs it, every value is also in its generated package.
//
// The .proto files are under proto/, the generated Go under gen/ (one
// package per team: gen/users/v1, gen/orders/v1, gen/notifications/v1).
// Regenerate with `make generate` at the repository root.
package contracts

import (
	_ "embed"

	"github.com/purista-go/purista"
	notificationsv1 "github.com/purista-go/purista/examples/contracts/gen/notifications/v1"
	ordersv1 "github.com/purista-go/purista/examples/contracts/gen/orders/v1"
	usersv1 "github.com/purista-go/purista/examples/contracts/gen/users/v1"
)

// OpenAPI is the merged OpenAPI v2 (Swagger) document of every contract.
//
//go:embed gen/openapi/contracts.swagger.json
var OpenAPI []byte

// Services returns the descriptions of the example system's services.
func Services() []*purista.Service {
	return []*purista.Service{
		notificationsv1.NotificationsService_PuristaService,
		ordersv1.OrdersService_PuristaService,
		usersv1.UsersService_PuristaService,
	}
}

// Events returns the descriptions of the example system's events.
func Events() []*purista.Event {
	return []*purista.Event{ordersv1.OrderPlaced_PuristaEvent}
}
