# tipperary_proto_library(NAME target PROTOS a.proto ... [GRPC] IMPORT_DIRS dir...)
# Generates C++ (and gRPC stubs with GRPC) into the build tree and wraps it in a static library.
function(tipperary_proto_library)
  cmake_parse_arguments(ARG "GRPC" "NAME" "PROTOS;IMPORT_DIRS;DEPS" ${ARGN})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/gen)
  file(MAKE_DIRECTORY ${out_dir})
  set(import_flags)
  foreach(dir ${ARG_IMPORT_DIRS})
    list(APPEND import_flags -I${dir})
  endforeach()
  set(srcs)
  foreach(proto ${ARG_PROTOS})
    # Path relative to the first import dir that contains it.
    set(rel "")
    foreach(dir ${ARG_IMPORT_DIRS})
      if(EXISTS ${dir}/${proto})
        set(rel ${proto})
        set(abs ${dir}/${proto})
        break()
      endif()
    endforeach()
    if(rel STREQUAL "")
      message(FATAL_ERROR "proto ${proto} not found in ${ARG_IMPORT_DIRS}")
    endif()
    string(REGEX REPLACE "\\.proto$" "" stem ${rel})
    set(outs ${out_dir}/${stem}.pb.cc ${out_dir}/${stem}.pb.h)
    set(cmd_flags --cpp_out=${out_dir})
    if(ARG_GRPC)
      list(APPEND outs ${out_dir}/${stem}.grpc.pb.cc ${out_dir}/${stem}.grpc.pb.h)
      list(APPEND cmd_flags --grpc_out=${out_dir}
           --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>)
    endif()
    add_custom_command(
      OUTPUT ${outs}
      COMMAND protobuf::protoc ${import_flags} ${cmd_flags} ${rel}
      DEPENDS ${abs} protobuf::protoc
      COMMENT "protoc ${rel}")
    list(APPEND srcs ${outs})
  endforeach()
  add_library(${ARG_NAME} STATIC ${srcs})
  target_include_directories(${ARG_NAME} SYSTEM PUBLIC ${out_dir})
  target_link_libraries(${ARG_NAME} PUBLIC protobuf::libprotobuf ${ARG_DEPS})
  if(ARG_GRPC)
    target_link_libraries(${ARG_NAME} PUBLIC gRPC::grpc++)
  endif()
endfunction()

# tipperary_descriptor_set(NAME target OUTPUT file.pb PROTOS ... IMPORT_DIRS ...)
# A FileDescriptorSet with imports, as an operator makes with protoc --include_imports.
function(tipperary_descriptor_set)
  cmake_parse_arguments(ARG "" "NAME;OUTPUT" "PROTOS;IMPORT_DIRS" ${ARGN})
  set(import_flags)
  set(deps)
  foreach(dir ${ARG_IMPORT_DIRS})
    list(APPEND import_flags -I${dir})
  endforeach()
  foreach(proto ${ARG_PROTOS})
    foreach(dir ${ARG_IMPORT_DIRS})
      if(EXISTS ${dir}/${proto})
        list(APPEND deps ${dir}/${proto})
        break()
      endif()
    endforeach()
  endforeach()
  add_custom_command(
    OUTPUT ${ARG_OUTPUT}
    COMMAND protobuf::protoc ${import_flags} --include_imports --include_source_info
            --descriptor_set_out=${ARG_OUTPUT} ${ARG_PROTOS}
    DEPENDS ${deps} protobuf::protoc
    COMMENT "descriptor set ${ARG_OUTPUT}")
  add_custom_target(${ARG_NAME} ALL DEPENDS ${ARG_OUTPUT})
endfunction()
