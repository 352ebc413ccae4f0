/* placeholder: being written */
typedef int sm_placeholder_llvm_matmul_t;
