# Reuse of the built extension module across build directories that were wiped.
#
# The Quick start runs `pip install .` and then `pip install '.[test]'`. Each runs in a new
# isolated build environment, and scikit-build-core clears the CMake cache and the object
# files of the (persistent) build directory when its environment changed, so every C++ file
# would be compiled twice. The finished module is therefore also kept in build/module-cache/
# under a hash of everything that goes into it - the sources under cpp/, this file and
# CMakeLists.txt, the compiler, the flags, the build options, the Python ABI and the pybind11
# version - and a build whose hash matches installs that file instead of compiling. Any
# change to any of them is a new hash, so an edited source is always compiled. Only the
# newest module is kept. RTREC_NATIVE_REUSE_MODULE=OFF always compiles.

option(RTREC_NATIVE_REUSE_MODULE "Reuse a module built from the same sources, compiler and options" ON)
set(RTREC_NATIVE_MODULE_CACHE "${CMAKE_CURRENT_SOURCE_DIR}/build/module-cache" CACHE PATH
    "Where the last built extension module is kept for reuse")

function(rtrec_module_hash out)
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS
       "${CMAKE_CURRENT_SOURCE_DIR}/cpp/*.cpp" "${CMAKE_CURRENT_SOURCE_DIR}/cpp/*.hpp"
       "${CMAKE_CURRENT_SOURCE_DIR}/cpp/*.h")
  list(SORT sources)
  set(text "")
  foreach(path ${sources} "${CMAKE_CURRENT_SOURCE_DIR}/CMakeLists.txt" "${CMAKE_CURRENT_LIST_FILE}")
    file(SHA256 "${path}" digest)
    file(RELATIVE_PATH name "${CMAKE_CURRENT_SOURCE_DIR}" "${path}")
    string(APPEND text "${name}=${digest}\n")
  endforeach()
  string(TOUPPER "${CMAKE_BUILD_TYPE}" type)
  foreach(var CMAKE_CXX_COMPILER CMAKE_CXX_COMPILER_ID CMAKE_CXX_COMPILER_VERSION CMAKE_BUILD_TYPE CMAKE_CXX_FLAGS
              CMAKE_CXX_FLAGS_${type} CMAKE_SHARED_LINKER_FLAGS CMAKE_MODULE_LINKER_FLAGS
              CMAKE_INTERPROCEDURAL_OPTIMIZATION RTREC_NATIVE_ARCH RTREC_NATIVE_OPENMP RTREC_NATIVE_SANITIZE
              Python_SOABI Python_VERSION Python_INCLUDE_DIRS pybind11_VERSION PYTHON_MODULE_EXTENSION
              SKBUILD_PROJECT_VERSION)
    string(APPEND text "${var}=${${var}}\n")
  endforeach()
  string(SHA256 digest "${text}")
  string(SUBSTRING "${digest}" 0 24 digest)
  set(${out} "${digest}" PARENT_SCOPE)
endfunction()

# Sets `out` to the cached module's path when one was built from exactly this input, else "".
function(rtrec_cached_module out)
  set(${out} "" PARENT_SCOPE)
  if(NOT RTREC_NATIVE_REUSE_MODULE)
    return()
  endif()
  rtrec_module_hash(hash)
  set(RTREC_NATIVE_MODULE_HASH "${hash}" PARENT_SCOPE)
  set(file "${RTREC_NATIVE_MODULE_CACHE}/${hash}/_core${PYTHON_MODULE_EXTENSION}")
  if(EXISTS "${file}")
    set(${out} "${file}" PARENT_SCOPE)
  endif()
endfunction()

# After `target` is built, keep it (only it: older modules are removed) for the next build.
function(rtrec_keep_module target)
  if(NOT RTREC_NATIVE_REUSE_MODULE)
    return()
  endif()
  set(dir "${RTREC_NATIVE_MODULE_CACHE}/${RTREC_NATIVE_MODULE_HASH}")
  set(file "${dir}/_core${PYTHON_MODULE_EXTENSION}")
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND "${CMAKE_COMMAND}" -E rm -rf "${RTREC_NATIVE_MODULE_CACHE}"
    COMMAND "${CMAKE_COMMAND}" -E make_directory "${dir}"
    # Copied under a temporary name and renamed: a build cut short never leaves half a file.
    COMMAND "${CMAKE_COMMAND}" -E copy "$<TARGET_FILE:${target}>" "${file}.partial"
    COMMAND "${CMAKE_COMMAND}" -E rename "${file}.partial" "${file}"
    VERBATIM)
endfunction()
