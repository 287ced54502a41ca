#include "tipperary/model/encoder.h"

#include <cmath>

namespace tipperary::model {

void L2NormalizeRows(std::vector<float>& data, int dim) {
  if (dim <= 0) return;
  const size_t rows = data.size() / static_cast<size_t>(dim);
  for (size_t r = 0; r < rows; ++r) {
    float* row = data.data() + r * dim;
    double sum = 0;
    for (int i = 0; i < dim; ++i) sum += static_cast<double>(row[i]) * row[i];
    if (sum == 0) continue;
    // Same clamp as torch.nn.functional.normalize (eps = 1e-12 on the norm).
    const float inv = static_cast<float>(1.0 / std::max(std::sqrt(sum), 1e-12));
    for (int i = 0; i < dim; ++i) row[i] *= inv;
  }
}

}  // namespace tipperary::model
