// AVX-512 (F, BW, VL, DQ) matrix-product kernels (compiled with those flags;
// only called when CPUID reports them).
#include <immintrin.h>

#include "kernels/cpu/matmul_kernels.h"

namespace moestream::kernels::cpu {

void FillAvx512Kernels(MatmulKernels& k) { (void)k; }

}  // namespace moestream::kernels::cpu
