// What the proxy's request path needs from an upstream: start a gRPC call, cancel it. The real
// one is UpstreamCluster (a pool of HTTP/2 connections); tests of the request path use a fake
// that records calls and answers them when the test says so.
//
//   upstream::UpstreamClient& client = cluster;
//   upstream::CallId id = client.Call(std::move(request), std::move(handlers));
//   client.Cancel(id);  // the client went away
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tipperary/upstream/grpc_call.h"

namespace tipperary::upstream {

// Identifies a call within its client; never 0.
using CallId = uint64_t;

class UpstreamClient {
 public:
  virtual ~UpstreamClient() = default;

  // Handlers run later on the caller's event loop, never from inside Call(); on_done runs
  // exactly once, last.
  virtual CallId Call(GrpcRequest request, CallHandlers handlers) = 0;
  // on_done(kCancelled) follows, unless the call already finished. Unknown ids are ignored.
  // Safe from inside the call's own on_headers/on_message.
  virtual void Cancel(CallId id) = 0;

  // GrpcRequest::streaming calls: queues length-prefixed messages; false when the call is over
  // (or does not stream). CloseSend() half-closes once the queue is sent.
  virtual bool Send(CallId id, std::string framed_messages) = 0;
  virtual void CloseSend(CallId id) = 0;
  // Bytes given to Send() not yet handed to the connection: a caller keeps this bounded by
  // waiting for on_send_drained, so a slow server slows the sender instead of growing a queue.
  virtual size_t send_buffered(CallId id) const = 0;
  // Receive back-pressure: while paused, the call's HTTP/2 stream window is not reopened, so
  // the server stops sending once the window is spent (its own flow control holds it back).
  virtual void PauseReceive(CallId id, bool paused) = 0;
};

}  // namespace tipperary::upstream
