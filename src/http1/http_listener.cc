#include "tipperary/http1/http_listener.h"

#include <sys/socket.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "listener_core.h"
#include "tipperary/common/log.h"

namespace tipperary::http1 {
namespace internal {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using ReusePort = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

// After a failed accept (EMFILE and the like) wait before trying again rather than spin.
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

std::string FormatAddress(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

}  // namespace

ListenerCore::ListenerCore(net::io_context& io, ListenerOptions opts, RequestHandler h,
                           std::shared_ptr<net::ssl::context> tls)
    : ioc(io),
      handler(std::move(h)),
      tls_context(std::move(tls)),
      options_(std::make_shared<const ListenerOptions>(std::move(opts))),
      acceptor_(io),
      retry_timer_(io) {}

absl::Status ListenerCore::Bind() {
  const common::Endpoint& ep = options().endpoint;
  const std::string wanted = FormatAddress(ep.host, ep.port);
  if (ep.kind != common::Endpoint::Kind::kTcp) {
    return absl::InvalidArgumentError(absl::StrCat(
        "listener ", options().name, ": only TCP addresses are supported, got ", ep.ToString()));
  }
  boost::system::error_code ec;
  tcp::endpoint endpoint;
  net::ip::address address = net::ip::make_address(ep.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, ep.port);
  } else {
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(ep.host, std::to_string(ep.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("listener ", options().name,
                                                     ": cannot resolve ", wanted, ": ",
                                                     ec ? ec.message() : "no addresses"));
    }
    endpoint = results.begin()->endpoint();
  }
  auto fail = [&](const char* what) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    return absl::UnavailableError(
        absl::StrCat("listener ", options().name, ": ", what, " ", wanted, ": ", ec.message()));
  };
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return fail("socket for");
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) return fail("SO_REUSEADDR on");
  acceptor_.set_option(ReusePort(true), ec);
  if (ec) return fail("SO_REUSEPORT on");
  acceptor_.bind(endpoint, ec);
  if (ec) return fail("bind");
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen on");
  tcp::endpoint local = acceptor_.local_endpoint(ec);
  if (ec) return fail("local address of");
  bound_port = local.port();
  bound_address = FormatAddress(ep.host, bound_port);
  return absl::OkStatus();
}

void ListenerCore::Start() {
  if (accepting_ || !acceptor_.is_open()) return;
  loop_thread.Bind();
  accepting_ = true;
  if (options().log_listening) {
    // Whatever the log level: scripts and tests read this line to learn a port chosen by port 0.
    common::Log(common::LogLevel::kInfo, "listening",
                {{"name", options().name}, {"address", bound_address}});
  }
  DoAccept();
}

void ListenerCore::DoAccept() {
  if (!accepting_ || accept_pending_) return;
  if (active_connections.load(std::memory_order_relaxed) >= options().max_connections) return;
  accept_pending_ = true;
  acceptor_.async_accept(
      [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
        self->OnAccept(ec, std::move(socket));
      });
}

void ListenerCore::OnAccept(boost::system::error_code ec, tcp::socket socket) {
  accept_pending_ = false;
  if (ec == net::error::operation_aborted || !accepting_) return;
  if (ec) {
    TIPPERARY_LOG(kWarn, "accept failed", {{"name", options().name}, {"error", ec.message()}});
    retry_timer_.expires_after(kAcceptRetryDelay);
    retry_timer_.async_wait([self = shared_from_this()](boost::system::error_code wait_ec) {
      if (wait_ec == net::error::operation_aborted) return;
      self->DoAccept();
    });
    return;
  }
  connections_accepted.fetch_add(1, std::memory_order_relaxed);
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  StartSession(shared_from_this(), std::move(socket));
  DoAccept();
}

void ListenerCore::MaybeResumeAccept() { DoAccept(); }

void ListenerCore::StopAccepting() {
  accepting_ = false;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  retry_timer_.cancel();
}

void ListenerCore::SetDraining() {
  draining = true;
  std::vector<std::weak_ptr<SessionBase>> sessions;
  sessions.reserve(sessions_.size());
  for (auto& [ptr, weak] : sessions_) sessions.push_back(weak);
  for (auto& weak : sessions) {
    if (auto session = weak.lock()) session->OnDraining();
  }
}

void ListenerCore::UpdateOptions(ListenerOptions options) {
  TIPPERARY_DCHECK_ON_THREAD(loop_thread);
  options.name = options_->name;
  options.endpoint = options_->endpoint;
  options.tls = options_->tls;
  options_ = std::make_shared<const ListenerOptions>(std::move(options));
}

void ListenerCore::CloseAll() {
  std::vector<std::weak_ptr<SessionBase>> sessions;
  sessions.reserve(sessions_.size());
  for (auto& [ptr, weak] : sessions_) sessions.push_back(weak);
  for (auto& weak : sessions) {
    if (auto session = weak.lock()) session->Abort();
  }
}

void ListenerCore::Register(const std::shared_ptr<SessionBase>& session) {
  sessions_.emplace(session.get(), session);
  active_connections.fetch_add(1, std::memory_order_relaxed);
}

void ListenerCore::Unregister(SessionBase* session) {
  if (sessions_.erase(session) == 0) return;
  active_connections.fetch_sub(1, std::memory_order_relaxed);
  if (accepting_ && !accept_pending_) {
    // Posted: this runs inside a session's close path.
    net::post(ioc, [self = shared_from_this()] { self->MaybeResumeAccept(); });
  }
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<HttpListener>> HttpListener::Create(
    boost::asio::io_context& ioc, ListenerOptions options, RequestHandler handler,
    std::shared_ptr<boost::asio::ssl::context> tls_context) {
  if (!handler) return absl::InvalidArgumentError("listener " + options.name + ": no handler");
  auto core = std::make_shared<internal::ListenerCore>(ioc, std::move(options), std::move(handler),
                                                       std::move(tls_context));
  absl::Status status = core->Bind();
  if (!status.ok()) return status;
  return std::unique_ptr<HttpListener>(new HttpListener(std::move(core)));
}

HttpListener::HttpListener(std::shared_ptr<internal::ListenerCore> core) : core_(std::move(core)) {}

HttpListener::~HttpListener() {
  boost::asio::dispatch(core_->ioc, [core = core_] {
    core->StopAccepting();
    core->CloseAll();
  });
}

uint16_t HttpListener::port() const { return core_->bound_port; }

std::string HttpListener::address() const { return core_->bound_address; }

void HttpListener::Start() {
  boost::asio::dispatch(core_->ioc, [core = core_] { core->Start(); });
}

void HttpListener::StopAccepting() {
  boost::asio::dispatch(core_->ioc, [core = core_] { core->StopAccepting(); });
}

void HttpListener::SetDraining() {
  boost::asio::dispatch(core_->ioc, [core = core_] { core->SetDraining(); });
}

void HttpListener::CloseAll() {
  boost::asio::dispatch(core_->ioc, [core = core_] { core->CloseAll(); });
}

size_t HttpListener::active_connections() const {
  return core_->active_connections.load(std::memory_order_relaxed);
}

size_t HttpListener::active_requests() const {
  return core_->active_requests.load(std::memory_order_relaxed);
}

void HttpListener::UpdateOptions(ListenerOptions options) {
  core_->UpdateOptions(std::move(options));
}

const std::string& HttpListener::name() const { return core_->options().name; }

ListenerCounters HttpListener::counters() const {
  ListenerCounters c;
  c.connections_accepted = core_->connections_accepted.load(std::memory_order_relaxed);
  c.requests = core_->requests.load(std::memory_order_relaxed);
  c.protocol_errors = core_->protocol_errors.load(std::memory_order_relaxed);
  c.timeouts = core_->timeouts.load(std::memory_order_relaxed);
  c.tls_handshake_failures = core_->tls_handshake_failures.load(std::memory_order_relaxed);
  c.compressed_responses = core_->compressed_responses.load(std::memory_order_relaxed);
  c.compression_input_bytes = core_->compression_input_bytes.load(std::memory_order_relaxed);
  c.compression_output_bytes = core_->compression_output_bytes.load(std::memory_order_relaxed);
  c.decoded_request_bodies = core_->decoded_request_bodies.load(std::memory_order_relaxed);
  return c;
}

}  // namespace tipperary::http1
