# Small helpers so each folder's CMakeLists.txt stays a few lines.

set(MOESTREAM_WARNINGS -Wall -Wextra -Werror -Wno-unused-parameter)

function(moestream_sanitizer_flags)
  if(MOESTREAM_SANITIZE STREQUAL "address")
    add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    add_link_options(-fsanitize=address,undefined)
  elseif(MOESTREAM_SANITIZE STREQUAL "thread")
    add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
    add_link_options(-fsanitize=thread)
  elseif(NOT MOESTREAM_SANITIZE STREQUAL "")
    message(FATAL_ERROR "MOESTREAM_SANITIZE must be empty, 'address' or 'thread', not '${MOESTREAM_SANITIZE}'")
  endif()
endfunction()

# Applies per-ISA flags to kernel sources named *_avx2.cc / *_avx512.cc /
# *_avx512vnni.cc, so
# the rest of the binary stays baseline x86-64 and dispatch happens at run time.
function(moestream_isa_flags)
  foreach(src ${ARGN})
    if(src MATCHES "_avx2\\.cc$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
    elseif(src MATCHES "_avx512\\.cc$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS
        "-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mavx2;-mfma;-mf16c;-Wno-maybe-uninitialized")
      # (GCC 12 warns inside its own avx512fintrin.h about _mm512_undefined_*.)
    elseif(src MATCHES "_avx512vnni\\.cc$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS
        "-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mavx512vnni;-mavx2;-mfma;-mf16c;-Wno-maybe-uninitialized")
    endif()
  endforeach()
endfunction()

# moestream_library(NAME <name> SRCS <files...> DEPS <targets...>)
function(moestream_library)
  cmake_parse_arguments(ML "" "NAME" "SRCS;DEPS" ${ARGN})
  if(NOT ML_SRCS)
    # A module with no sources yet: headers only.
    add_library(${ML_NAME} INTERFACE)
    target_include_directories(${ML_NAME} INTERFACE ${PROJECT_SOURCE_DIR})
    target_link_libraries(${ML_NAME} INTERFACE ${ML_DEPS})
    return()
  endif()
  add_library(${ML_NAME} STATIC ${ML_SRCS})
  target_include_directories(${ML_NAME} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${ML_NAME} PUBLIC ${ML_DEPS})
  foreach(src ${ML_SRCS})
    if(src MATCHES "\\.cc$")
      list(APPEND cxx_srcs ${src})
    endif()
  endforeach()
  target_compile_options(${ML_NAME} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${MOESTREAM_WARNINGS}>)
  moestream_isa_flags(${cxx_srcs})
endfunction()

# moestream_test(NAME <exe> SRCS <files...> DEPS <targets...> LABELS <labels...>)
# One executable per module and label; each gtest case becomes a CTest test.
function(moestream_test)
  cmake_parse_arguments(MT "" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT MT_SRCS)
    return()
  endif()
  add_executable(${MT_NAME} ${MT_SRCS})
  target_link_libraries(${MT_NAME} PRIVATE ${MT_DEPS} moestream_test_util GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_options(${MT_NAME} PRIVATE ${MOESTREAM_WARNINGS})
  gtest_discover_tests(${MT_NAME}
    DISCOVERY_MODE PRE_TEST
    DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${MT_LABELS}")
  if(MT_NAME MATCHES "^(io|model|engine|text|trace|gen|cli)_")
    # These suites also drive the built `moestream` command line.
    add_dependencies(${MT_NAME} moestream)
  endif()
endfunction()

# Globs one module's tests into executables by label: *_uring_test.cc ->
# uring, *_gpu_test.cc -> gpu, other *_test.cc -> cpu.
function(moestream_module_tests module)
  cmake_parse_arguments(MMT "" "" "DEPS" ${ARGN})
  file(GLOB all CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${module}/*_test.cc)
  set(cpu "")
  set(uring "")
  set(gpu "")
  foreach(f ${all})
    if(f MATCHES "_uring_test\\.cc$")
      list(APPEND uring ${f})
    elseif(f MATCHES "_gpu_test\\.cc$")
      list(APPEND gpu ${f})
    else()
      list(APPEND cpu ${f})
    endif()
  endforeach()
  moestream_test(NAME ${module}_tests SRCS ${cpu} DEPS ${MMT_DEPS} LABELS cpu)
  if(MOESTREAM_HAVE_URING)
    moestream_test(NAME ${module}_uring_tests SRCS ${uring} DEPS ${MMT_DEPS} LABELS uring)
  endif()
  moestream_test(NAME ${module}_gpu_tests SRCS ${gpu} DEPS ${MMT_DEPS} LABELS gpu)
endfunction()
