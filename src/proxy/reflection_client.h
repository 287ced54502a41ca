// Learns an upstream's schema over gRPC server reflection, so an operator can run the proxy with
// no descriptor file at all:
//
//   descriptors:
//     - {reflection: worker}
//
//   ReflectionClient::Fetch(cluster, timeout, [](absl::StatusOr<FileDescriptorSet> set) {...});
//
// Each question is its own stream (one request message, then half-close), which the upstream
// client supports for any method; the files of every listed service and their imports are
// collected into one FileDescriptorSet.
//
// Both protocol versions are spoken, as grpcurl does: grpc.reflection.v1 first, and when the
// server answers UNIMPLEMENTED (grpc++ before 1.57 and other older servers have v1alpha only),
// grpc.reflection.v1alpha. The messages are the same on the wire. The version that worked is
// remembered per upstream cluster, and tried first next time; if it stops working (the server
// was replaced), the other is tried again.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.pb.h"
#include "tipperary/upstream/upstream_cluster.h"

namespace tipperary::proxy {

class ReflectionClient {
 public:
  using Done = std::function<void(absl::StatusOr<google::protobuf::FileDescriptorSet>)>;
  // On the cluster's loop thread; `done` is called once, on that thread.
  static void Fetch(upstream::UpstreamCluster& cluster, std::chrono::nanoseconds timeout,
                    Done done);

  // "v1" or "v1alpha": what `cluster` last answered; nullopt before it did. Any thread.
  static std::optional<std::string_view> RememberedVersion(
      const upstream::UpstreamCluster& cluster);
};

}  // namespace tipperary::proxy
