/* placeholder: the kernel IR evaluator is being written */
typedef int sm_placeholder_kernel_eval_t;
