// What every embedding RPC does first, in one place: refuse while the models load or the
// worker drains (UNAVAILABLE), then find the model asked for (the default for "";
// NOT_FOUND names the ones served).
//
//   absl::StatusOr<std::shared_ptr<ModelRuntime>> model = Admit(core, request.model());
//   if (!model.ok()) return Finish(model.status());
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model_runtime.h"
#include "worker_core.h"

namespace tipperary::worker {

// The call holds the runtime until it is done with it: a reload that removes or replaces the
// model unloads it only after that.
absl::StatusOr<std::shared_ptr<ModelRuntime>> Admit(const WorkerCore& core,
                                                    const std::string& requested_model);

// The metrics label for a request's model: its id when it exists, else "unknown" (client
// input never becomes a label).
std::string ModelLabel(const WorkerCore& core, const std::string& requested_model);

}  // namespace tipperary::worker
