/* placeholder: being written */
typedef int sm_placeholder_llvm_math_t;
