/* placeholder: being written */
typedef int sm_placeholder_jit_t;
