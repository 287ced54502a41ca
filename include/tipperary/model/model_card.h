// Where a model directory came from: its Hugging Face id
// ("sentence-transformers/all-MiniLM-L6-v2"), read from the files' own metadata, so that clients
// may name the model the way they name it to sentence-transformers, vLLM or TEI.
//
//   std::optional<std::string> id = model::HuggingFaceId("/models/minilm");
//   // "sentence-transformers/all-MiniLM-L6-v2", or nullopt when nothing says
//   model::ShortName(*id);  // "all-MiniLM-L6-v2"
//
// Sources, in order: a Hugging Face cache path (".../models--ORG--NAME/snapshots/REV", as
// huggingface_hub lays out its downloads), then the model card (README.md) that
// sentence-transformers writes and the Hub serves, whose usage example loads the model by its
// id: SentenceTransformer('ORG/NAME'). config.json's "_name_or_path" is not used: it names the
// checkpoint the model was fine-tuned from (nreimers/MiniLM-L6-H384-uncased for all-MiniLM).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tipperary::model {

std::optional<std::string> HuggingFaceId(const std::string& model_dir);

// The part after the last '/' of a Hugging Face id; the id itself when it has none.
std::string_view ShortName(std::string_view hf_id);

// Whether `id` looks like a Hub repository id: ORG/NAME, each [A-Za-z0-9._-]+.
bool IsHuggingFaceId(std::string_view id);

}  // namespace tipperary::model
