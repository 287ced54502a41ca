// Learns an upstream's schema over gRPC server reflection (grpc.reflection.v1alpha), so an
// operator can run the proxy with no descriptor file at all:
//
//   descriptors:
//     - {reflection: worker}
//
//   ReflectionClient::Fetch(cluster, timeout, [](absl::StatusOr<FileDescriptorSet> set) {...});
//
// Each question is its own stream (one request message, then half-close), which the upstream
// client supports for any method; the files of every listed service and their imports are
// collected into one FileDescriptorSet.
#pragma once

#include <chrono>
#include <functional>

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
};

}  // namespace tipperary::proxy
