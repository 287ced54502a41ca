// A scripted HTTP/2 server (nghttp2, blocking sockets, one thread, one connection at a time)
// for what a well-behaved grpc++ server never does: non-gRPC answers, broken framing, refused
// streams, GOAWAY before processing, unanswered PINGs. Shared by the upstream tests.
//
//   FakeH2Server server(FakeH2Server::Mode::kRefuseAll);
//   options.endpoints = {*common::ParseEndpoint(server.address())};
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace tipperary::upstream::test_support {

inline std::string Frame(const std::string& message, uint8_t flags = 0) {
  auto size = static_cast<uint32_t>(message.size());
  std::string out;
  out.push_back(static_cast<char>(flags));
  out.push_back(static_cast<char>(size >> 24));
  out.push_back(static_cast<char>(size >> 16));
  out.push_back(static_cast<char>(size >> 8));
  out.push_back(static_cast<char>(size));
  return out + message;
}

class FakeH2Server {
 public:
  enum class Mode {
    kEcho,          // 200, the request body back, grpc-status 0.
    kHttp503,       // 503 text/plain, no grpc-status.
    kNoGrpcStatus,  // 200 application/grpc, body, END_STREAM without trailers.
    kCompressed,    // A message with the compressed flag.
    kSplit,         // Three messages in 7-byte DATA frames, then trailers.
    kTrailersOnly,  // grpc-status 7 in the only HEADERS frame.
    kGoawayFirst,   // First connection: GOAWAY(last_stream_id=0) instead of answering.
    kRefuseFirst,   // First stream: RST_STREAM(REFUSED_STREAM).
    kSilent,        // Never answers requests nor PINGs.
    kCalmOnPing,    // GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings") on the first PING; echoes.
    kRefuseAll,     // Every stream: RST_STREAM(REFUSED_STREAM) (an overloaded server).
    kGoawayEach,    // Every connection: GOAWAY(last_stream_id=0) on its first request.
  };

  explicit FakeH2Server(Mode mode) : mode_(mode) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(listen_fd_, 16);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeH2Server() {
    stop_ = true;
    thread_.join();
    close(listen_fd_);
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }

 private:
  struct Stream {
    std::string request;
    std::string response;
    size_t offset = 0;
    bool trailers = true;
    size_t chunk = 1 << 20;
  };

  void Run() {
    while (!stop_) {
      pollfd pfd{listen_fd_, POLLIN, 0};
      if (poll(&pfd, 1, 20) <= 0) continue;
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      ++connections_;
      Serve(fd);
      close(fd);
    }
  }

  void Serve(int fd) {
    nghttp2_session_callbacks* callbacks = nullptr;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        callbacks, [](nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                      void* user_data) {
          static_cast<FakeH2Server*>(user_data)->streams_[stream_id].request.append(
              reinterpret_cast<const char*>(data), len);
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        callbacks, [](nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
          auto* self = static_cast<FakeH2Server*>(user_data);
          if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 &&
              self->mode_ == Mode::kCalmOnPing && !self->connection_goaway_) {
            self->connection_goaway_ = true;
            const char kDebug[] = "too_many_pings";
            nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_ENHANCE_YOUR_CALM,
                                  reinterpret_cast<const uint8_t*>(kDebug), sizeof(kDebug) - 1);
          }
          if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
              (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
            static_cast<FakeH2Server*>(user_data)->Respond(session, frame->hd.stream_id);
          }
          return 0;
        });
    nghttp2_option* option = nullptr;
    nghttp2_option_new(&option);
    if (mode_ == Mode::kSilent) nghttp2_option_set_no_auto_ping_ack(option, 1);
    nghttp2_session* session = nullptr;
    nghttp2_session_server_new2(&session, callbacks, this, option);
    nghttp2_session_callbacks_del(callbacks);
    nghttp2_option_del(option);
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, nullptr, 0);
    streams_.clear();
    connection_goaway_ = false;
    std::vector<uint8_t> buffer(16384);
    while (!stop_) {
      const uint8_t* data = nullptr;
      ssize_t n;
      bool write_failed = false;
      while ((n = nghttp2_session_mem_send(session, &data)) > 0) {
        if (!WriteAll(fd, data, static_cast<size_t>(n))) write_failed = true;
      }
      if (n < 0 || write_failed) break;
      pollfd pfd{fd, POLLIN, 0};
      if (poll(&pfd, 1, 20) <= 0) continue;
      ssize_t got = read(fd, buffer.data(), buffer.size());
      if (got <= 0) break;
      if (nghttp2_session_mem_recv(session, buffer.data(), static_cast<size_t>(got)) < 0) break;
    }
    nghttp2_session_del(session);
  }

  static bool WriteAll(int fd, const uint8_t* data, size_t size) {
    while (size > 0) {
      ssize_t n = write(fd, data, size);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }

  static nghttp2_nv Nv(const char* name, const char* value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value)), strlen(name),
                      strlen(value), NGHTTP2_NV_FLAG_NONE};
  }

  static ssize_t ReadResponse(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                              size_t length, uint32_t* data_flags, nghttp2_data_source* source,
                              void*) {
    auto* stream = static_cast<Stream*>(source->ptr);
    size_t n = std::min({length, stream->chunk, stream->response.size() - stream->offset});
    std::memcpy(buf, stream->response.data() + stream->offset, n);
    stream->offset += n;
    if (stream->offset == stream->response.size()) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      if (stream->trailers) {
        *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv trailers[] = {Nv("grpc-status", "0"), Nv("grpc-message", "all%20good"),
                                 Nv("x-trailer", "t")};
        nghttp2_submit_trailer(session, stream_id, trailers, 3);
      }
    }
    return static_cast<ssize_t>(n);
  }

  void Respond(nghttp2_session* session, int32_t stream_id) {
    const int request_number = ++requests_;
    Stream& stream = streams_[stream_id];
    nghttp2_data_provider provider;
    provider.source.ptr = &stream;
    provider.read_callback = ReadResponse;
    nghttp2_nv grpc_headers[] = {Nv(":status", "200"), Nv("content-type", "application/grpc")};
    switch (mode_) {
      case Mode::kEcho:
      case Mode::kCalmOnPing:
        stream.response = stream.request;
        nghttp2_submit_response(session, stream_id, grpc_headers, 2, &provider);
        break;
      case Mode::kHttp503: {
        nghttp2_nv headers[] = {Nv(":status", "503"), Nv("content-type", "text/plain")};
        stream.response = "overloaded";
        stream.trailers = false;
        nghttp2_submit_response(session, stream_id, headers, 2, &provider);
        break;
      }
      case Mode::kNoGrpcStatus:
        stream.response = stream.request;
        stream.trailers = false;
        nghttp2_submit_response(session, stream_id, grpc_headers, 2, &provider);
        break;
      case Mode::kCompressed:
        stream.response = Frame("xyz", 1);
        nghttp2_submit_response(session, stream_id, grpc_headers, 2, &provider);
        break;
      case Mode::kSplit:
        stream.response = Frame("first") + Frame("") + Frame(std::string(100, 'x'));
        stream.chunk = 7;
        nghttp2_submit_response(session, stream_id, grpc_headers, 2, &provider);
        break;
      case Mode::kTrailersOnly: {
        nghttp2_nv headers[] = {Nv(":status", "200"), Nv("content-type", "application/grpc"),
                                Nv("grpc-status", "7"), Nv("grpc-message", "denied"),
                                Nv("x-info", "only")};
        nghttp2_submit_response(session, stream_id, headers, 5, nullptr);
        break;
      }
      case Mode::kGoawayFirst:
        if (connections_.load() == 1) {
          if (!connection_goaway_) {
            connection_goaway_ = true;
            nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
          }
        } else {
          stream.response = stream.request;
          nghttp2_submit_response(session, stream_id, grpc_headers, 2, &provider);
        }
        break;
      case Mode::kRefuseFirst:
        if (request_number == 1) {
          nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_REFUSED_STREAM);
        } else {
          stream.response = stream.request;
          nghttp2_submit_response(session, stream_id, grpc_headers, 2, &provider);
        }
        break;
      case Mode::kRefuseAll:
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_REFUSED_STREAM);
        break;
      case Mode::kGoawayEach:
        if (!connection_goaway_) {
          connection_goaway_ = true;
          nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
        }
        break;
      case Mode::kSilent:
        break;
    }
  }

  Mode mode_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::map<int32_t, Stream> streams_;  // Server thread only.
  bool connection_goaway_ = false;
  std::thread thread_;
};

}  // namespace tipperary::upstream::test_support
