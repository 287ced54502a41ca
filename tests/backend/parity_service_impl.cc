#include "parity_service_impl.h"

namespace tipperary::testing {

ParityServiceImpl::ParityServiceImpl()
    : descriptor_(&descriptor_table_tipperary_2ftesting_2fv1_2fparity_5fservice_2eproto) {}

grpc::Status ParityServiceImpl::EchoParity(grpc::ServerContext*, const AllTypes* request,
                                           AllTypes* response) {
  *response = *request;
  return grpc::Status::OK;
}

grpc::Status ParityServiceImpl::EchoShadow(grpc::ServerContext*, const AllTypes* request,
                                           AllTypes* response) {
  *response = *request;
  return grpc::Status::OK;
}

}  // namespace tipperary::testing
