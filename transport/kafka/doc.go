// Package kafka carries gRPC unary calls as Kafka records.
//
// A ClientConn implements grpc.ClientConnInterface, so the clients that
// protoc-gen-go-grpc generates work over it unchanged; a Server implements
// grpc.ServiceRegistrar, so the generated RegisterXxxServer functions do too.
// A request is a record on the service's request topic; the instances of a
// service share the topic through a consumer group; the reply travels back on
// a reply topic owned by the calling client instance. The wire format is
// specified in docs/protocol.md.
//
// Because the request waits in Kafka, a client may call a service that is not
// running yet: the call is answered once an instance starts, as long as the
// call's deadline has not passed. A request whose deadline passed while it
// waited is never executed.
//
// Clients and servers are handed the contracts of the services they call
// and serve (WithContracts): the values protoc-gen-purista generates, which
// carry request topics, partition keys, timeouts and events.
//
//	conn, err := kafka.Dial(ctx, []string{"127.0.0.1:9092"},
//		kafka.WithContracts(usersv1.UsersService_PuristaService))
//	...
//	users := usersv1.NewUsersServiceClient(conn)
//
//	srv, err := kafka.NewServer([]string{"127.0.0.1:9092"},
//		kafka.WithContracts(usersv1.UsersService_PuristaService))
//	...
//	usersv1.RegisterUsersServiceServer(srv, impl)
//	err = srv.Serve(ctx)
package kafka
