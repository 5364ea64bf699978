// Package ordersvc implements orders.v1.OrdersService, the orders team's
// service. Placing an order calls the users team's service through whatever
// connection it is given — Kafka, in process or gRPC — to check that the
// user exists, passing on the request's deadline, request id and trace
// context; then it publishes the OrderPlaced event, which the notifications
// service subscribes to. The orders service does not know who listens.
//
// Orders live in memory, per instance.
package ordersvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/purista-go/purista"
	ordersv1 "github.com/purista-go/purista/examples/contracts/gen/orders/v1"
	usersv1 "github.com/purista-go/purista/examples/contracts/gen/users/v1"
	"github.com/purista-go/purista/examples/services/internal/apierr"
	"github.com/purista-go/purista/examples/services/internal/callctx"
)

// Server implements ordersv1.OrdersServiceServer.
type Server struct {
	ordersv1.UnimplementedOrdersServiceServer

	log       *slog.Logger
	users     usersv1.UsersServiceClient
	publisher purista.Publisher // nil: the transport's, from the handler's context

	mu     sync.Mutex
	byID   map[string]*ordersv1.Order
	byUser map[string][]string // user id → order ids, oldest first
}

// Option configures a Server.
type Option func(*Server)

// WithPublisher publishes OrderPlaced through p instead of the publisher of
// the transport serving the call — for a plain grpc.Server, which has none.
func WithPublisher(p purista.Publisher) Option { return func(s *Server) { s.publisher = p } }

// New returns a Server that reaches the users service through conn (any
// grpc.ClientConnInterface: a kafka.ClientConn, an inproc channel, a
// *grpc.ClientConn).
func New(conn grpc.ClientConnInterface, logger *slog.Logger, opts ...Option) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{
		log:    logger,
		users:  usersv1.NewUsersServiceClient(conn),
		byID:   map[string]*ordersv1.Order{},
		byUser: map[string][]string{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// CreateOrder validates the items, asks the users service whether the user
// exists, publishes OrderPlaced and stores the order.
func (s *Server) CreateOrder(ctx context.Context, req *ordersv1.CreateOrderRequest) (*ordersv1.CreateOrderResponse, error) {
	var bad apierr.Violations
	if req.GetUserId() == "" {
		bad.Add("user_id", "is required")
	}
	if n := len(req.GetItems()); n < 1 || n > 20 {
		bad.Add("items", "must hold 1 to 20 line items")
	}
	var total int64
	for i, it := range req.GetItems() {
		field := fmt.Sprintf("items[%d]", i)
		if n := utf8.RuneCountInString(it.GetSku()); n < 1 || n > 32 {
			bad.Add(field+".sku", "must be 1 to 32 characters")
		}
		if q := it.GetQuantity(); q < 1 || q > 100 {
			bad.Add(field+".quantity", "must be 1 to 100")
		}
		if it.GetUnitPriceCents() <= 0 {
			bad.Add(field+".unit_price_cents", "must be positive")
		}
		total += int64(it.GetQuantity()) * int64(it.GetUnitPriceCents())
	}
	if err := bad.Err("the order is not valid"); err != nil {
		return nil, err
	}

	// A call to another team's service: the deadline is in ctx already,
	// callctx.Outgoing passes the request id and trace context on.
	out := callctx.Outgoing(ctx)
	if _, err := s.users.GetUser(out, &usersv1.GetUserRequest{UserId: req.GetUserId()}); err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, apierr.NotFound("users.v1.User", req.GetUserId())
		}
		return nil, status.Errorf(status.Code(err), "checking user %q with the users service: %s", req.GetUserId(), status.Convert(err).Message())
	}

	o := &ordersv1.Order{
		OrderId:    s.newID(),
		UserId:     req.GetUserId(),
		Items:      req.GetItems(),
		TotalCents: total,
		Status:     ordersv1.OrderStatus_ORDER_STATUS_PLACED,
		CreateTime: timestamppb.Now(),
	}
	// The event first: an order nobody hears of is not placed. The request
	// id and trace context travel with the event too.
	pub := s.publisher
	if pub == nil {
		pub = purista.PublisherFromContext(ctx)
	}
	ev := &ordersv1.OrderPlaced{
		OrderId: o.GetOrderId(), UserId: o.GetUserId(), ItemCount: int32(len(o.GetItems())),
		TotalCents: total, PlaceTime: o.GetCreateTime(),
	}
	if err := ordersv1.PublishOrderPlaced(out, pub, ev); err != nil {
		s.log.ErrorContext(ctx, "publishing OrderPlaced failed; the order is not placed", "user_id", o.GetUserId(), "error", err)
		return nil, status.Errorf(codes.Unavailable, "the order was not placed: publishing OrderPlaced failed: %s", status.Convert(err).Message())
	}
	s.mu.Lock()
	s.byID[o.GetOrderId()] = o
	s.byUser[o.GetUserId()] = append(s.byUser[o.GetUserId()], o.GetOrderId())
	s.mu.Unlock()
	s.log.InfoContext(ctx, "order placed", "order_id", o.GetOrderId(), "user_id", o.GetUserId(),
		"total_cents", total, "request_id", callctx.RequestID(ctx))
	return &ordersv1.CreateOrderResponse{Order: proto.CloneOf(o)}, nil
}

// GetOrder returns an order or NOT_FOUND.
func (s *Server) GetOrder(_ context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.GetOrderResponse, error) {
	if req.GetOrderId() == "" {
		return nil, apierr.Invalid("order_id", "is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.byID[req.GetOrderId()]
	if !ok {
		return nil, apierr.NotFound("orders.v1.Order", req.GetOrderId())
	}
	return &ordersv1.GetOrderResponse{Order: proto.CloneOf(o)}, nil
}

// ListOrders returns a user's orders, newest first, optionally only those
// in one status.
func (s *Server) ListOrders(_ context.Context, req *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
	if req.GetUserId() == "" {
		return nil, apierr.Invalid("user_id", "is required")
	}
	if _, known := ordersv1.OrderStatus_name[int32(req.GetStatus())]; !known {
		return nil, apierr.Invalid("status", "is not an OrderStatus")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &ordersv1.ListOrdersResponse{}
	for _, id := range slices.Backward(s.byUser[req.GetUserId()]) {
		if o := s.byID[id]; req.GetStatus() == ordersv1.OrderStatus_ORDER_STATUS_UNSPECIFIED || o.GetStatus() == req.GetStatus() {
			resp.Orders = append(resp.Orders, proto.CloneOf(o))
		}
	}
	return resp, nil
}

func (s *Server) newID() string {
	for {
		var b [4]byte
		_, _ = rand.Read(b[:])
		id := "o-" + hex.EncodeToString(b[:])
		s.mu.Lock()
		_, taken := s.byID[id]
		s.mu.Unlock()
		if !taken {
			return id
		}
	}
}
