package system

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	notificationsv1 "github.com/purista-go/purista/examples/contracts/gen/notifications/v1"
	ordersv1 "github.com/purista-go/purista/examples/contracts/gen/orders/v1"
	usersv1 "github.com/purista-go/purista/examples/contracts/gen/users/v1"
)

// Probe makes one harmless read call to a service component and reports
// whether an instance answered. Any answer counts, an error status too;
// UNAVAILABLE and DEADLINE_EXCEEDED (no instance took the request in time)
// do not.
func Probe(ctx context.Context, conn grpc.ClientConnInterface, name string) error {
	var err error
	switch name {
	case Users:
		_, err = usersv1.NewUsersServiceClient(conn).ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: 1})
	case Orders:
		_, err = ordersv1.NewOrdersServiceClient(conn).ListOrders(ctx, &ordersv1.ListOrdersRequest{UserId: "probe"})
	case Notifications:
		_, err = notificationsv1.NewNotificationsServiceClient(conn).ListNotifications(ctx, &notificationsv1.ListNotificationsRequest{UserId: "probe"})
	default:
		return fmt.Errorf("system: no service %q", name)
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return err
	}
	return nil
}
