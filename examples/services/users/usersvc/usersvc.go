// Package usersvc implements users.v1.UsersService: the users team's
// service, kept apart from its main so that tests, the monolith and a plain
// gRPC server reuse it unchanged.
//
// Users live in memory, per instance: enough for the example system, which
// runs one instance of each service.
package usersvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv1 "github.com/purista-go/purista/examples/contracts/gen/users/v1"
	"github.com/purista-go/purista/examples/services/internal/apierr"
	"github.com/purista-go/purista/examples/services/internal/callctx"
)

// Server implements usersv1.UsersServiceServer. Methods the contract gains
// later answer UNIMPLEMENTED until they are written.
type Server struct {
	usersv1.UnimplementedUsersServiceServer

	log *slog.Logger

	mu      sync.Mutex
	byID    map[string]*usersv1.User
	byEmail map[string]string // lower-cased e-mail → user id
	order   []string          // user ids in creation order
}

// New returns a Server with no users that logs to logger.
func New(logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{log: logger, byID: map[string]*usersv1.User{}, byEmail: map[string]string{}}
}

// CreateUser stores a new user. The e-mail address and display name were
// checked against the contract's rules (buf.validate) before the handler
// ran, by the transport or the gateway.
func (s *Server) CreateUser(ctx context.Context, req *usersv1.CreateUserRequest) (*usersv1.CreateUserResponse, error) {
	in := req.GetUser()
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(in.GetEmail())
	if id, ok := s.byEmail[key]; ok {
		return nil, apierr.AlreadyExists("a user with this e-mail address exists", "users.v1.User", id, "same e-mail address")
	}
	u := &usersv1.User{
		UserId:      s.newID(),
		Email:       in.GetEmail(),
		DisplayName: in.GetDisplayName(),
		CreateTime:  timestamppb.Now(),
	}
	s.byID[u.GetUserId()] = u
	s.byEmail[key] = u.GetUserId()
	s.order = append(s.order, u.GetUserId())
	s.log.InfoContext(ctx, "user created", "user_id", u.GetUserId(), "request_id", callctx.RequestID(ctx))
	return &usersv1.CreateUserResponse{User: proto.CloneOf(u)}, nil
}

// GetUser returns a user or NOT_FOUND.
func (s *Server) GetUser(ctx context.Context, req *usersv1.GetUserRequest) (*usersv1.GetUserResponse, error) {
	if req.GetUserId() == "" {
		return nil, apierr.Invalid("user_id", "is required")
	}
	s.mu.Lock()
	u, ok := s.byID[req.GetUserId()]
	s.mu.Unlock()
	// The request id and the deadline came with the request: from the
	// gateway, or passed on by the service that called.
	s.log.InfoContext(ctx, "get user", "user_id", req.GetUserId(), "found", ok,
		"request_id", callctx.RequestID(ctx), "deadline_left", callctx.DeadlineLeft(ctx))
	if !ok {
		return nil, apierr.NotFound("users.v1.User", req.GetUserId())
	}
	return &usersv1.GetUserResponse{User: proto.CloneOf(u)}, nil
}

// ExportUsers streams the users in creation order, up to the request's
// limit (0: all). The list is copied first, so a slow reader holds no lock.
func (s *Server) ExportUsers(req *usersv1.ExportUsersRequest, stream grpc.ServerStreamingServer[usersv1.ExportUsersResponse]) error {
	s.mu.Lock()
	users := make([]*usersv1.User, 0, len(s.order))
	for _, id := range s.order {
		if lim := int(req.GetLimit()); lim > 0 && len(users) == lim {
			break
		}
		users = append(users, proto.CloneOf(s.byID[id]))
	}
	s.mu.Unlock()
	for _, u := range users {
		if err := stream.Send(&usersv1.ExportUsersResponse{User: u}); err != nil {
			return err
		}
	}
	return nil
}

// ListUsers returns one page of users in creation order. The page token is
// the position of the next user.
func (s *Server) ListUsers(_ context.Context, req *usersv1.ListUsersRequest) (*usersv1.ListUsersResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = 20
	case size < 0 || size > 100:
		return nil, apierr.Invalid("page_size", "must be 1 to 100, or 0 for 20")
	}
	start := 0
	if t := req.GetPageToken(); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return nil, apierr.Invalid("page_token", "must be the next_page_token of an earlier reply")
		}
		start = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &usersv1.ListUsersResponse{}
	for i := start; i < len(s.order) && len(resp.Users) < size; i++ {
		resp.Users = append(resp.Users, proto.CloneOf(s.byID[s.order[i]]))
	}
	if end := start + len(resp.Users); end < len(s.order) {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

func (s *Server) newID() string {
	for {
		var b [4]byte
		_, _ = rand.Read(b[:])
		if id := "u-" + hex.EncodeToString(b[:]); s.byID[id] == nil {
			return id
		}
	}
}
