#include "admission.h"

namespace tipperary::worker {

absl::StatusOr<std::shared_ptr<ModelRuntime>> Admit(const WorkerCore& core,
                                                    const std::string& requested_model) {
  if (absl::Status status = core.Admission(); !status.ok()) return status;
  return core.FindModel(requested_model);
}

std::string ModelLabel(const WorkerCore& core, const std::string& requested_model) {
  absl::StatusOr<std::shared_ptr<ModelRuntime>> model = core.FindModel(requested_model);
  return model.ok() ? (*model)->name() : "unknown";
}

}  // namespace tipperary::worker
