package usersvc_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	usersv1 "github.com/purista-go/purista/examples/contracts/gen/users/v1"
	"github.com/purista-go/purista/examples/services/users/usersvc"
)

func TestUsers(t *testing.T) {
	s := usersvc.New(slog.New(slog.DiscardHandler))
	ctx := context.Background()
	for i := range 5 {
		if _, err := s.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Email: fmt.Sprintf("u%d@example.com", i), DisplayName: "U"}}); err != nil {
			t.Fatal(err)
		}
	}
	// The same address again, in other letters: ALREADY_EXISTS.
	_, err := s.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Email: "U0@Example.com", DisplayName: "U"}})
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("duplicate e-mail: %v", err)
	}
	// The contract's rules, which every transport and the gateway check
	// before the handler runs.
	for _, bad := range []*usersv1.User{
		{Email: "", DisplayName: "Ada"},
		{Email: "ada", DisplayName: "Ada"},
		{Email: "Ada <ada@example.com>", DisplayName: "Ada"},
		{Email: "ada@example.com", DisplayName: ""},
		{Email: "ada@example.com", DisplayName: strings.Repeat("a", 65)},
	} {
		if err := protovalidate.Validate(&usersv1.CreateUserRequest{User: bad}); err == nil {
			t.Errorf("user %v passes the contract's rules", bad)
		}
	}

	// Pages of 2: 2, 2, 1, and the tokens chain them.
	var sizes []int
	token := ""
	for {
		page, err := s.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page.GetUsers()))
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	if fmt.Sprint(sizes) != "[2 2 1]" {
		t.Errorf("page sizes %v, want [2 2 1]", sizes)
	}
	if _, err := s.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: 101}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("page_size 101: %v", err)
	}
	if _, err := s.GetUser(ctx, &usersv1.GetUserRequest{UserId: "u-missing"}); status.Code(err) != codes.NotFound {
		t.Errorf("missing user: %v", err)
	}
}
