// Launchers for kernels that are wrong on purpose: only the emulator can run them safely (on a GPU they
// race or hang), and its tests prove it detects what is wrong with them.
#pragma once

namespace cudacnn::test {

// out[t] = in[(t + 1) % threads] through shared memory, with or without the __syncthreads in between.
void neighbour_exchange(const float* in, float* out, int threads, bool with_barrier);

// Thread 0 waits at a shuffle for lane 1, which waits at __syncthreads: neither can go on.
void shuffle_against_barrier();

// Lanes of one warp wait at different collectives (a ballot and a shuffle) with the same mask.
void mismatched_collectives();

// A shuffle whose mask leaves out the calling lane.
void mask_without_own_lane();

// Lane 0 shuffles with a full mask after lanes 1..31 have returned: the source lane took no part, and the
// value it gets back is the emulator's poison (a NaN). Writes what lane 0 received.
void shuffle_from_finished_lane(float* out);

}  // namespace cudacnn::test
