#include "test_service_impl.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "absl/strings/escaping.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "tipperary/common/log.h"

namespace tipperary::testing {
namespace {

using v1::Thing;

// Largest payload Big and Download produce; keeps a typo from eating the machine.
constexpr int64_t kMaxBigBytes = 64ll << 20;

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) {
    return "{}";
  }
  return json;
}

// "shelves/1/things/2" -> "shelves/1"; names without a parent give "".
std::string ParentOf(const std::string& name) {
  auto pos = name.find("/things/");
  return pos == std::string::npos ? std::string() : name.substr(0, pos);
}

bool IsReportedMetadataKey(const std::string& key) {
  if (key.empty() || key.starts_with("grpc-") || key.starts_with(":")) return false;
  return key != "user-agent" && key != "te" && key != "content-type";
}

// Why grpc++ could not send this metadata entry (gRPC's HTTP/2 protocol spec), or "".
std::string InvalidMetadata(const std::string& key, const std::string& value) {
  if (key.empty()) return "empty metadata key";
  for (char c : key) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) {
      return "invalid metadata key \"" + key + "\"";
    }
  }
  if (key.starts_with("grpc-")) return "reserved metadata key \"" + key + "\"";
  if (key.ends_with("-bin")) return "";  // Any bytes: base64 on the wire.
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) return "metadata value of \"" + key + "\" is not printable ASCII";
  }
  return "";
}

std::string RichStatusDetails(int code, const std::string& message) {
  google::rpc::Status status;
  status.set_code(code);
  status.set_message(message);

  google::rpc::ErrorInfo info;
  info.set_reason("TEST_FAILURE");
  info.set_domain("tipperary.test");
  // Moved from a std::string: assigning the literal trips a false GCC 12 -Wrestrict.
  (*info.mutable_metadata())["k"] = std::string("v");
  status.add_details()->PackFrom(info);

  google::rpc::BadRequest bad_request;
  auto* violation = bad_request.add_field_violations();
  violation->set_field("f");
  violation->set_description("d");
  status.add_details()->PackFrom(bad_request);

  google::rpc::RetryInfo retry;
  retry.mutable_retry_delay()->set_seconds(1);
  retry.mutable_retry_delay()->set_nanos(500000000);
  status.add_details()->PackFrom(retry);

  google::rpc::DebugInfo debug;
  debug.set_detail("x");
  debug.add_stack_entries("frame0");
  debug.add_stack_entries("frame1");
  status.add_details()->PackFrom(debug);

  v1::CustomDetail custom;
  custom.set_note("custom");
  custom.set_attempt(3);
  status.add_details()->PackFrom(custom);

  return status.SerializeAsString();
}

}  // namespace

grpc::Status TestServiceImpl::Echo(grpc::ServerContext*, const AllTypes* request,
                                   AllTypes* response) {
  *response = *request;
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::Unannotated(grpc::ServerContext*, const AllTypes* request,
                                          AllTypes* response) {
  *response = *request;
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::GetThing(grpc::ServerContext*, const v1::GetThingRequest* request,
                                       Thing* response) {
  response->set_name(request->name());
  response->set_parent(ParentOf(request->name()));
  response->set_color(request->color());
  response->set_size(request->page_size());
  response->set_received_json(ToJson(*request));
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::GetThingName(grpc::ServerContext*, const v1::GetThingRequest* request,
                                           Thing* response) {
  response->set_name(request->name());
  response->set_display_name("name of " + request->name());
  response->set_received_json(ToJson(*request));
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::ListThings(grpc::ServerContext*, const v1::ListThingsRequest* request,
                                         v1::ListThingsResponse* response) {
  if (request->page_size() < 0 || request->page_size() > 10000) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "page_size must be in [0, 10000]"};
  }
  std::string received = ToJson(*request);
  for (int i = 0; i < request->page_size(); ++i) {
    Thing* thing = response->add_things();
    thing->set_name(request->parent() + "/things/" + std::to_string(i));
    thing->set_parent(request->parent());
    thing->set_size(i);
    thing->set_received_json(received);
  }
  if (request->page_size() > 0)
    response->set_next_page_token("page-after-" + request->page_token());
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::CreateThing(grpc::ServerContext*,
                                          const v1::CreateThingRequest* request, Thing* response) {
  *response = request->thing();
  response->set_parent(request->parent());
  if (!request->thing_id().empty()) {
    response->set_name(request->parent() + "/things/" + request->thing_id());
  }
  response->set_received_json(ToJson(*request));
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::UpdateThing(grpc::ServerContext*,
                                          const v1::UpdateThingRequest* request, Thing* response) {
  *response = request->thing();
  response->set_parent(ParentOf(request->thing().name()));
  *response->mutable_update_mask() = request->update_mask();
  response->set_received_json(ToJson(*request));
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::DeleteThing(grpc::ServerContext*,
                                          const v1::DeleteThingRequest* request,
                                          google::protobuf::Empty*) {
  if (request->name().empty()) return {grpc::StatusCode::INVALID_ARGUMENT, "name is required"};
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::RunThing(grpc::ServerContext*, const v1::RunThingRequest* request,
                                       Thing* response) {
  response->set_name(request->name());
  response->set_parent(ParentOf(request->name()));
  *response->mutable_details() = request->params();
  response->set_received_json(ToJson(*request));
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::Lock(grpc::ServerContext*, const v1::LockRequest* request,
                                   Thing* response) {
  response->set_name(request->name());
  response->set_display_name("locked");
  response->set_received_json(ToJson(*request));
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::GetFile(grpc::ServerContext*, const v1::GetFileRequest* request,
                                      Thing* response) {
  response->set_name(request->path());
  response->set_received_json(ToJson(*request));
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::Fail(grpc::ServerContext* context, const v1::FailRequest* request,
                                   google::protobuf::Empty*) {
  for (const auto& [key, value] : request->trailers()) {
    if (std::string problem = InvalidMetadata(key, value); !problem.empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, problem);
    }
    context->AddTrailingMetadata(key, value);
  }
  if (request->code() == 0) return grpc::Status::OK;
  // grpc::StatusCode has no fixed underlying type, so only 0..31 are valid values of it (a cast
  // of anything else is UB); codes beyond that are clamped to 31, still unknown to every peer.
  auto code = static_cast<grpc::StatusCode>(std::clamp(request->code(), 0, 31));
  if (!request->with_details()) return {code, request->message()};
  return {code, request->message(), RichStatusDetails(request->code(), request->message())};
}

grpc::Status TestServiceImpl::Metadata(grpc::ServerContext* context,
                                       const v1::MetadataRequest* request,
                                       v1::MetadataResponse* response) {
  auto& received = *response->mutable_received();
  for (const auto& [key_ref, value_ref] : context->client_metadata()) {
    std::string key(key_ref.data(), key_ref.size());
    if (!IsReportedMetadataKey(key)) continue;
    std::string value(value_ref.data(), value_ref.size());
    // "-bin" values as the bytes grpc++ decoded, base64 again (padded): a string field holds them.
    if (key.ends_with("-bin")) value = absl::Base64Escape(value);
    // Repeated keys are reported comma-joined, as HTTP would fold them.
    auto [it, inserted] = received.try_emplace(key, value);
    if (!inserted) it->second += ", " + value;
  }
  response->set_peer(context->peer());
  // grpc++ aborts the process on metadata it cannot send (CR/LF in a value, an upper-case
  // key): refuse it with a status instead, as a real server would.
  for (const auto* map : {&request->response_headers(), &request->response_trailers()}) {
    for (const auto& [key, value] : *map) {
      if (std::string problem = InvalidMetadata(key, value); !problem.empty()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, problem);
      }
    }
  }
  for (const auto& [key, value] : request->response_headers()) {
    context->AddInitialMetadata(key, value);
  }
  for (const auto& [key, value] : request->response_trailers()) {
    context->AddTrailingMetadata(key, value);
  }
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::Slow(grpc::ServerContext* context, const v1::SlowRequest* request,
                                   v1::SlowResponse* response) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto total = std::chrono::milliseconds(std::max<int64_t>(0, request->delay_ms()));
  // Tests wait for this line to know the call reached the server before they disturb it.
  std::string delay_text = std::to_string(request->delay_ms());
  TIPPERARY_LOG(kInfo, "slow started", {{"method", "Slow"}, {"delay_ms", delay_text}});
  bool cancelled = false;
  while (Clock::now() - start < total) {
    if (context->IsCancelled()) {
      cancelled = true;
      break;
    }
    auto left = total - (Clock::now() - start);
    std::this_thread::sleep_for(std::min<Clock::duration>(left, std::chrono::milliseconds(5)));
  }
  if (!cancelled && context->IsCancelled()) cancelled = true;
  auto slept = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  response->set_slept_ms(slept);
  response->set_cancelled(cancelled);
  if (cancelled) {
    cancelled_calls_.fetch_add(1);
    const bool past_deadline = std::chrono::system_clock::now() >= context->deadline();
    std::string slept_text = std::to_string(slept);
    TIPPERARY_LOG(kInfo, "cancelled",
                  {{"method", "Slow"},
                   {"slept_ms", slept_text},
                   {"past_deadline", past_deadline ? "true" : "false"}});
    return {grpc::StatusCode::CANCELLED, "cancelled while sleeping"};
  }
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::Upload(grpc::ServerContext*, const google::api::HttpBody* request,
                                     v1::UploadResponse* response) {
  response->set_content_type(request->content_type());
  response->set_size(static_cast<int64_t>(request->data().size()));
  response->set_data(request->data());
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::Download(grpc::ServerContext*, const v1::DownloadRequest* request,
                                       google::api::HttpBody* response) {
  response->set_content_type(request->content_type().empty() ? "text/plain"
                                                             : request->content_type());
  response->set_data(request->text());
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::CollectThings(grpc::ServerContext*, grpc::ServerReader<Thing>* reader,
                                            v1::ListThingsResponse* response) {
  // A long stream (a streamed upload test) keeps the first things and counts the rest, so the
  // backend's memory says nothing about the proxy's.
  constexpr int kKept = 1000;
  Thing thing;
  int64_t count = 0;
  int64_t name_bytes = 0;
  while (reader->Read(&thing)) {
    ++count;
    name_bytes += static_cast<int64_t>(thing.name().size());
    if (count <= kKept) *response->add_things() = thing;
  }
  if (count > kKept) {
    response->set_next_page_token(std::to_string(count) + " things, " + std::to_string(name_bytes) +
                                  " name bytes");
  }
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::EchoThings(grpc::ServerContext*,
                                         grpc::ServerReaderWriter<Thing, Thing>* stream) {
  Thing thing;
  while (stream->Read(&thing)) {
    thing.set_size(thing.size() * 2);
    if (!stream->Write(thing)) return {grpc::StatusCode::CANCELLED, "client gone"};
  }
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::StreamThings(grpc::ServerContext* context,
                                           const v1::StreamRequest* request,
                                           grpc::ServerWriter<Thing>* writer) {
  // With fail_after > 0 the stream sends min(count, fail_after) messages, then fails.
  const bool fail = request->fail_after() > 0;
  const int to_send = fail ? std::min(request->count(), request->fail_after()) : request->count();
  for (int i = 0; i < to_send; ++i) {
    const int64_t wait_ms = i == 0 ? request->first_delay_ms() : request->interval_ms();
    if (wait_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    Thing thing;
    thing.set_name("things/" + std::to_string(i));
    thing.set_size(i);
    if (context->IsCancelled() || !writer->Write(thing)) {
      cancelled_calls_.fetch_add(1);
      std::string sent = std::to_string(i);
      TIPPERARY_LOG(kInfo, "cancelled", {{"method", "StreamThings"}, {"sent", sent}});
      return {grpc::StatusCode::CANCELLED, "cancelled"};
    }
  }
  if (fail) {
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "failed after " + std::to_string(to_send) + " messages"};
  }
  return grpc::Status::OK;
}

grpc::Status TestServiceImpl::Big(grpc::ServerContext*, const v1::BigRequest* request,
                                  v1::BigResponse* response) {
  if (request->size() < 0 || request->size() > kMaxBigBytes) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "size must be in [0, 64 MiB]"};
  }
  std::string data(static_cast<size_t>(request->size()), '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
  response->set_data(std::move(data));
  response->set_size(request->size());
  return grpc::Status::OK;
}

}  // namespace tipperary::testing
