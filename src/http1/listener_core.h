// Private to the listener component: the state an HttpListener shares with its connections.
//
// Sessions hold a shared_ptr to the core, so the core (and its counters) outlives the
// HttpListener object when connections are still closing. Everything except the atomics is used
// on the io_context thread only.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <unordered_map>

#include "tipperary/common/check.h"
#include "tipperary/http1/http_exchange.h"
#include "tipperary/http1/http_listener.h"

namespace tipperary::http1::internal {

class ExchangeImpl;

// What the listener and the exchanges need from a connection, whatever its stream type.
class SessionBase : public std::enable_shared_from_this<SessionBase> {
 public:
  virtual ~SessionBase() = default;
  // The listener started draining: close now if idle.
  virtual void OnDraining() = 0;
  // Hard close; pending exchanges are cancelled.
  virtual void Abort() = 0;
  // An exchange got response data: write what is at the head of the queue.
  virtual void OnExchangeOutput() = 0;
  // Whether the caller is on the listener's io_context thread (for DCHECKs).
  virtual bool OnLoopThread() const = 0;
  // Runs `fn` later on the io_context thread, keeping the session alive until then.
  virtual void Post(std::function<void()> fn) = 0;
  // The application took a piece of the streamed body: reading may resume.
  virtual void OnBodyRead() = 0;
};

class ListenerCore : public std::enable_shared_from_this<ListenerCore> {
 public:
  ListenerCore(boost::asio::io_context& ioc, ListenerOptions options, RequestHandler handler,
               std::shared_ptr<boost::asio::ssl::context> tls_context);

  absl::Status Bind();
  void Start();
  void StopAccepting();
  void SetDraining();
  void CloseAll();

  // Called by sessions on their io_context thread.
  void Register(const std::shared_ptr<SessionBase>& session);
  void Unregister(SessionBase* session);

  // The options in effect; a session takes a snapshot when it is created and keeps it, so a
  // connection never sees its limits change under it (UpdateOptions closes older ones gracefully).
  const ListenerOptions& options() const { return *options_; }
  std::shared_ptr<const ListenerOptions> options_snapshot() const { return options_; }
  // Loop thread: new connections get `options`; open ones finish their exchanges and close.
  void UpdateOptions(ListenerOptions options);

  boost::asio::io_context& ioc;
  const RequestHandler handler;
  const std::shared_ptr<boost::asio::ssl::context> tls_context;
  std::string bound_address;  // host:port after Bind().
  uint16_t bound_port = 0;
  bool draining = false;

  // The io_context's thread, bound when accepting starts: sessions and exchanges live there.
  common::ThreadChecker loop_thread;

  std::atomic<size_t> active_connections{0};
  std::atomic<size_t> active_requests{0};
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> protocol_errors{0};
  std::atomic<uint64_t> timeouts{0};
  std::atomic<uint64_t> tls_handshake_failures{0};
  std::atomic<uint64_t> compressed_responses{0};
  std::atomic<uint64_t> compression_input_bytes{0};
  std::atomic<uint64_t> compression_output_bytes{0};
  std::atomic<uint64_t> decoded_request_bodies{0};

 private:
  void DoAccept();
  void OnAccept(boost::system::error_code ec, boost::asio::ip::tcp::socket socket);
  void MaybeResumeAccept();

  std::shared_ptr<const ListenerOptions> options_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_timer_;
  bool accepting_ = false;
  bool accept_pending_ = false;
  std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions_;
};

// Creates a session for an accepted socket (plain or TLS as the core says), registers it with
// the core and starts it. Defined in http_session.cc.
void StartSession(const std::shared_ptr<ListenerCore>& core, boost::asio::ip::tcp::socket socket);

}  // namespace tipperary::http1::internal
