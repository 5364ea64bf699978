// Package notificationsvc implements notifications.v1.NotificationsService,
// the notifications team's service. It subscribes to the orders team's
// OrderPlaced event and writes the user a notification for each; clients
// read a user's notifications over HTTP.
//
// Notifications live in memory, per instance.
package notificationsvc

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/purista-go/purista"
	notificationsv1 "github.com/purista-go/purista/examples/contracts/gen/notifications/v1"
	ordersv1 "github.com/purista-go/purista/examples/contracts/gen/orders/v1"
	"github.com/purista-go/purista/examples/services/internal/apierr"
	"github.com/purista-go/purista/examples/services/internal/callctx"
)

// Server implements notificationsv1.NotificationsServiceServer.
type Server struct {
	notificationsv1.UnimplementedNotificationsServiceServer

	log *slog.Logger

	mu     sync.Mutex
	next   int
	byUser map[string][]*notificationsv1.Notification
	seen   map[string]bool // ids of the events handled, to ignore redeliveries
}

// New returns a Server with no notifications that logs to logger.
func New(logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{log: logger, byUser: map[string][]*notificationsv1.Notification{}, seen: map[string]bool{}}
}

// OnOrderPlaced is invoked once per OrderPlaced event. Delivery is at least
// once, so an event seen before (same event id) is acknowledged without a
// second notification.
func (s *Server) OnOrderPlaced(ctx context.Context, ev *ordersv1.OrderPlaced) (*notificationsv1.OnOrderPlacedResponse, error) {
	info, _ := purista.EventFromContext(ctx)
	s.mu.Lock()
	dup := info.ID != "" && s.seen[info.ID]
	if info.ID != "" {
		s.seen[info.ID] = true
	}
	s.mu.Unlock()
	if dup {
		return &notificationsv1.OnOrderPlacedResponse{}, nil
	}
	text := fmt.Sprintf("Your order %s (%d item(s), %d.%02d) was placed.",
		ev.GetOrderId(), ev.GetItemCount(), ev.GetTotalCents()/100, ev.GetTotalCents()%100)
	if _, err := s.SendNotification(ctx, &notificationsv1.SendNotificationRequest{UserId: ev.GetUserId(), Text: text}); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "order event handled", "event_id", info.ID, "attempt", info.Attempt, "order_id", ev.GetOrderId())
	return &notificationsv1.OnOrderPlacedResponse{}, nil
}

// SendNotification stores a notification for a user.
func (s *Server) SendNotification(ctx context.Context, req *notificationsv1.SendNotificationRequest) (*notificationsv1.SendNotificationResponse, error) {
	var bad apierr.Violations
	if req.GetUserId() == "" {
		bad.Add("user_id", "is required")
	}
	if n := utf8.RuneCountInString(req.GetText()); n < 1 || n > 500 {
		bad.Add("text", "must be 1 to 500 characters")
	}
	if err := bad.Err("the notification is not valid"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.next++
	n := &notificationsv1.Notification{
		NotificationId: fmt.Sprintf("n-%d", s.next),
		UserId:         req.GetUserId(),
		Text:           req.GetText(),
		CreateTime:     timestamppb.Now(),
	}
	s.byUser[n.GetUserId()] = append(s.byUser[n.GetUserId()], n)
	s.mu.Unlock()
	s.log.InfoContext(ctx, "notification stored", "notification_id", n.GetNotificationId(), "user_id", n.GetUserId(),
		"request_id", callctx.RequestID(ctx))
	return &notificationsv1.SendNotificationResponse{Notification: proto.CloneOf(n)}, nil
}

// ListNotifications returns a user's notifications, oldest first.
func (s *Server) ListNotifications(_ context.Context, req *notificationsv1.ListNotificationsRequest) (*notificationsv1.ListNotificationsResponse, error) {
	if req.GetUserId() == "" {
		return nil, apierr.Invalid("user_id", "is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &notificationsv1.ListNotificationsResponse{}
	for _, n := range s.byUser[req.GetUserId()] {
		resp.Notifications = append(resp.Notifications, proto.CloneOf(n))
	}
	return resp, nil
}
