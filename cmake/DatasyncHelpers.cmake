# Helpers shared by every module's CMakeLists.txt.

# ds_warnings(target): our own code builds with every warning as an error.
function(ds_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror
    -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter)
  target_compile_definitions(${target} PRIVATE _GNU_SOURCE)
endfunction()

# ds_library(name SOURCES...): a static library of our own code.
function(ds_library name)
  add_library(${name} STATIC ${ARGN})
  ds_warnings(${name})
endfunction()

# ds_add_test(name SOURCES src... LIBS lib... [LABEL l] [TIMEOUT s]
#             [ARGS a...]): an executable registered with ctest.
function(ds_add_test name)
  cmake_parse_arguments(T "" "LABEL;TIMEOUT" "SOURCES;LIBS;ARGS" ${ARGN})
  if(NOT T_LABEL)
    set(T_LABEL unit)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${name} ${T_SOURCES})
  ds_warnings(${name})
  set_target_properties(${name} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${T_LIBS})
  add_test(NAME ${name} COMMAND ${name} ${T_ARGS})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
    LABELS ${T_LABEL})
endfunction()

# ds_unit_tests(module lib...): every tests/unit/<module>_*_test.c becomes
# a cmocka test linked with the given libraries and the test support code.
# Each module registers its own tests this way, so adding a test file
# needs no edit outside the module's directory.
function(ds_unit_tests module)
  if(NOT DATASYNC_TESTS)
    return()
  endif()
  file(GLOB srcs CONFIGURE_DEPENDS
       ${PROJECT_SOURCE_DIR}/tests/unit/${module}_*_test.c)
  foreach(src ${srcs})
    get_filename_component(base ${src} NAME_WE)
    ds_add_test(${base} SOURCES ${src}
      LIBS ${ARGN} ds_testsupport PkgConfig::CMOCKA)
  endforeach()
endfunction()
