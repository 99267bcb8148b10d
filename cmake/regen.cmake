# Run as: cmake -DPROTOC_C=.. -DPROTOC=.. [-DPLUGIN=..] -DPROTO_DIR=..
#               -DPROTOS=a.proto,b.proto -DOUT=dir [-DCOMPARE=dir]
#               -P regen.cmake
# Writes protoc-c's output (and protoc-gen-nrpc's, when PLUGIN is given)
# for PROTOS under OUT. With COMPARE, fails when any generated file differs
# from the one under COMPARE: that is the drift check CI runs.
string(REPLACE "," ";" PROTOS "${PROTOS}")
file(MAKE_DIRECTORY ${OUT})
execute_process(
  COMMAND ${PROTOC_C} -I${PROTO_DIR} --c_out=${OUT} ${PROTOS}
  WORKING_DIRECTORY ${PROTO_DIR}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "protoc-c failed (${rc})")
endif()
if(PLUGIN)
  execute_process(
    COMMAND ${PROTOC} -I${PROTO_DIR} --plugin=protoc-gen-nrpc=${PLUGIN}
            --nrpc_out=${OUT} ${PROTOS}
    WORKING_DIRECTORY ${PROTO_DIR}
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "protoc with protoc-gen-nrpc failed (${rc})")
  endif()
endif()
if(COMPARE)
  file(GLOB_RECURSE generated RELATIVE ${OUT} ${OUT}/*.c ${OUT}/*.h)
  set(drift "")
  foreach(f ${generated})
    if(NOT EXISTS ${COMPARE}/${f})
      list(APPEND drift "${f} (missing from gen/)")
    else()
      file(SHA256 ${OUT}/${f} a)
      file(SHA256 ${COMPARE}/${f} b)
      if(NOT a STREQUAL b)
        list(APPEND drift ${f})
      endif()
    endif()
  endforeach()
  if(drift)
    message(FATAL_ERROR "gen/ has drifted from proto/: ${drift}\n"
                        "Run: cmake --build build --target regen")
  endif()
  list(LENGTH generated n)
  message(STATUS "gen/ matches proto/ (${n} files)")
endif()
