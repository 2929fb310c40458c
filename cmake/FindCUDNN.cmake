# Finds cuDNN: the toolkit's copy, a system install, or a pip wheel's (nvidia/cudnn with include/ and
# lib/libcudnn.so.9 only). Set CUDNN_ROOT to choose one. Defines CUDNN::cudnn and CUDNN_VERSION.
set(_cudnn_hints ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_TARGET_DIR}
    /usr/local/cuda /usr)
find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${_cudnn_hints} PATH_SUFFIXES include)
find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 libcudnn.so.8 HINTS ${_cudnn_hints}
    PATH_SUFFIXES lib64 lib lib/x86_64-linux-gnu)

if(CUDNN_INCLUDE_DIR)
    set(_cudnn_version_file "${CUDNN_INCLUDE_DIR}/cudnn_version.h")
    if(NOT EXISTS "${_cudnn_version_file}")
        set(_cudnn_version_file "${CUDNN_INCLUDE_DIR}/cudnn.h")
    endif()
    file(STRINGS "${_cudnn_version_file}" _cudnn_lines REGEX "#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ")
    foreach(_part MAJOR MINOR PATCHLEVEL)
        string(REGEX MATCH "CUDNN_${_part} ([0-9]+)" _m "${_cudnn_lines}")
        set(_cudnn_${_part} "${CMAKE_MATCH_1}")
    endforeach()
    set(CUDNN_VERSION "${_cudnn_MAJOR}.${_cudnn_MINOR}.${_cudnn_PATCHLEVEL}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUDNN
    REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR
    VERSION_VAR CUDNN_VERSION
    FAIL_MESSAGE "cuDNN not found: install it with the CUDA toolkit or set -DCUDNN_ROOT=/path/with/include/cudnn.h")

if(CUDNN_FOUND AND NOT TARGET CUDNN::cudnn)
    add_library(CUDNN::cudnn UNKNOWN IMPORTED)
    set_target_properties(CUDNN::cudnn PROPERTIES
        IMPORTED_LOCATION "${CUDNN_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
endif()
mark_as_advanced(CUDNN_INCLUDE_DIR CUDNN_LIBRARY)
