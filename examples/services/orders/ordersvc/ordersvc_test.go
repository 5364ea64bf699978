package ordersvc_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/purista-go/purista/examples/contracts/gen/orders/v1"
	usersv1 "github.com/purista-go/purista/examples/contracts/gen/users/v1"
	"github.com/purista-go/purista/examples/services/orders/ordersvc"
	"github.com/purista-go/purista/examples/services/users/usersvc"
	"github.com/purista-go/purista/transport/inproc"
)

var quiet = slog.New(slog.DiscardHandler)

// seen records what the users service received from the orders service.
type seen struct {
	md       metadata.MD
	deadline time.Duration
}

func setup(t *testing.T) (ordersv1.OrdersServiceClient, usersv1.UsersServiceClient, chan seen) {
	t.Helper()
	calls := make(chan seen, 10)
	usersEnd := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if info.FullMethod == usersv1.UsersService_GetUser_FullMethodName {
			md, _ := metadata.FromIncomingContext(ctx)
			d, _ := ctx.Deadline()
			calls <- seen{md, time.Until(d)}
		}
		return h(ctx, req)
	}
	contracts := inproc.WithContracts(usersv1.UsersService_PuristaService, ordersv1.OrdersService_PuristaService)
	ch := inproc.New(inproc.WithLogger(quiet), contracts)
	t.Cleanup(func() { _ = ch.Close() })
	usersv1.RegisterUsersServiceServer(ch.NewServer(inproc.WithUnaryServerInterceptors(usersEnd), contracts), usersvc.New(quiet))
	ordersv1.RegisterOrdersServiceServer(ch, ordersvc.New(ch, quiet))
	return ordersv1.NewOrdersServiceClient(ch), usersv1.NewUsersServiceClient(ch), calls
}

func TestCreateOrderValidation(t *testing.T) {
	orders, _, _ := setup(t)
	_, err := orders.CreateOrder(context.Background(), &ordersv1.CreateOrderRequest{
		UserId: "u-1",
		Items: []*ordersv1.LineItem{
			{Sku: "ok", Quantity: 1, UnitPriceCents: 100},
			{Sku: "", Quantity: 101, UnitPriceCents: 0},
		},
	})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("want INVALID_ARGUMENT, got %v", err)
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	want := []string{"items[1].sku", "items[1].quantity", "items[1].unit_price_cents"}
	if len(fields) != len(want) {
		t.Fatalf("field violations %v, want %v", fields, want)
	}
	for i := range want {
		if fields[i] != want[i] {
			t.Errorf("field violations %v, want %v", fields, want)
		}
	}
}

// TestCreateOrderCallsUsers checks the service-to-service call: the users
// service gets the request id and trace context, and a deadline no later
// than the order's own.
func TestCreateOrderCallsUsers(t *testing.T) {
	orders, users, calls := setup(t)
	u, err := users.CreateUser(context.Background(), &usersv1.CreateUserRequest{User: &usersv1.User{Email: "ada@example.com", DisplayName: "Ada"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", "req-42", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "x-secret", "not passed on")
	resp, err := orders.CreateOrder(ctx, &ordersv1.CreateOrderRequest{
		UserId: u.GetUser().GetUserId(),
		Items:  []*ordersv1.LineItem{{Sku: "mug", Quantity: 3, UnitPriceCents: 1250}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOrder().GetTotalCents() != 3750 {
		t.Errorf("total %d, want 3750", resp.GetOrder().GetTotalCents())
	}
	got := <-calls
	if v := got.md.Get("x-request-id"); len(v) != 1 || v[0] != "req-42" {
		t.Errorf("users saw x-request-id %v, want req-42", v)
	}
	if v := got.md.Get("traceparent"); len(v) != 1 {
		t.Errorf("users saw traceparent %v", v)
	}
	if v := got.md.Get("x-secret"); len(v) != 0 {
		t.Errorf("users saw x-secret %v: only the propagated keys travel on", v)
	}
	if got.deadline <= 0 || got.deadline > 3*time.Second {
		t.Errorf("users saw %v left, want the caller's 3 s deadline", got.deadline)
	}

	// An unknown user is NOT_FOUND, named in a ResourceInfo.
	_, err = orders.CreateOrder(context.Background(), &ordersv1.CreateOrderRequest{
		UserId: "u-nobody", Items: []*ordersv1.LineItem{{Sku: "mug", Quantity: 1, UnitPriceCents: 1}},
	})
	st := status.Convert(err)
	if st.Code() != codes.NotFound || len(st.Details()) != 1 || st.Details()[0].(*errdetails.ResourceInfo).GetResourceName() != "u-nobody" {
		t.Errorf("unknown user: %v %v", err, st.Details())
	}
}

func TestListOrdersByStatus(t *testing.T) {
	orders, users, _ := setup(t)
	ctx := context.Background()
	u, err := users.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Email: "lin@example.com", DisplayName: "Lin"}})
	if err != nil {
		t.Fatal(err)
	}
	id := u.GetUser().GetUserId()
	var placed []string
	for range 3 {
		r, err := orders.CreateOrder(ctx, &ordersv1.CreateOrderRequest{UserId: id, Items: []*ordersv1.LineItem{{Sku: "a", Quantity: 1, UnitPriceCents: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		placed = append(placed, r.GetOrder().GetOrderId())
	}
	list, err := orders.ListOrders(ctx, &ordersv1.ListOrdersRequest{UserId: id, Status: ordersv1.OrderStatus_ORDER_STATUS_PLACED})
	if err != nil || len(list.GetOrders()) != 3 || list.GetOrders()[0].GetOrderId() != placed[2] {
		t.Errorf("placed orders newest first: %v %v", list, err)
	}
	list, err = orders.ListOrders(ctx, &ordersv1.ListOrdersRequest{UserId: id, Status: ordersv1.OrderStatus_ORDER_STATUS_SHIPPED})
	if err != nil || len(list.GetOrders()) != 0 {
		t.Errorf("shipped orders: %v %v", list, err)
	}
}
