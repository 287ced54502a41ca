// The HTTP/1.1 -> gRPC -> HTTP/1.1 path of one event loop: route, transcode, call upstream,
// transcode back, map status and metadata, record metrics and the access log.
//
//   RequestHandler handler(loop, shared);
//   listener::RequestHandler fn = [&handler](auto ex) { handler.Handle(std::move(ex)); };
#pragma once

#include <memory>

#include "event_loop.h"
#include "shared_state.h"
#include "tipperary/listener/http_exchange.h"

namespace tipperary::proxy {

class RequestHandler {
 public:
  RequestHandler(EventLoop& loop, SharedState& shared) : loop_(loop), shared_(shared) {}

  // On the loop thread; answers through the exchange, now or later.
  void Handle(std::shared_ptr<listener::HttpExchange> exchange);

 private:
  EventLoop& loop_;
  SharedState& shared_;
};

}  // namespace tipperary::proxy
