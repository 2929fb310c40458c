// Must NOT compile: 48 KiB + 4 bytes of static shared memory, one float over sm_90's static limit. The emulator
// cannot see static shared sizes, so this limit is enforced by nvcc in the cuda flavour (tests/CMakeLists.txt).
__global__ void static_shared_over_limit(float* out) {
    __shared__ float staged[48 * 1024 / 4 + 1];
    staged[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = staged[threadIdx.x + 1];
}
