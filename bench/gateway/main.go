// Command tipperary-bench-gateway is a grpc-gateway (v1, Debian's golang-grpc-gateway) reverse
// proxy for tipperary.testing.v1.TestService, the baseline that bench/run-proxy-bench compares
// tipperary-proxy against. It serves HTTP/1.1 JSON on --listen and forwards to the gRPC backend
// at --backend over one plaintext HTTP/2 connection, as a stock grpc-gateway deployment would.
//
// Built by bench/run-proxy-bench in GOPATH mode from Debian's golang-*-dev sources; the generated
// code (testpb) lives in the build folder, not in the repository.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/runtime"
	"google.golang.org/grpc"

	testpb "tipperarybench/testpb/tipperary/testing/v1"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "HTTP listen address (port 0: pick one)")
	backend := flag.String("backend", "", "gRPC backend host:port")
	procs := flag.Int("procs", 1, "GOMAXPROCS (the same core budget as the proxy's threads); 0: Go's default, every CPU")
	flag.Parse()
	if *backend == "" {
		log.Fatal("--backend is required")
	}
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}

	ctx := context.Background()
	// OrigName=false, EmitDefaults=false: the proto3 JSON defaults, like tipperary-proxy's.
	mux := gwruntime.NewServeMux(gwruntime.WithMarshalerOption(gwruntime.MIMEWildcard,
		&gwruntime.JSONPb{OrigName: false}))
	opts := []grpc.DialOption{grpc.WithInsecure()}
	if err := testpb.RegisterTestServiceHandlerFromEndpoint(ctx, mux, *backend, opts); err != nil {
		log.Fatalf("register: %v", err)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	// The same JSON line the proxy and the backend print, so the bench script parses one format.
	fmt.Fprintf(os.Stdout, "{\"msg\":\"listening\",\"name\":\"http\",\"address\":%q}\n", ln.Addr().String())
	os.Stdout.Sync()
	log.Fatal(http.Serve(ln, mux))
}
