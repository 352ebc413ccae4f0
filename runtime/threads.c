/* placeholder: being written */
typedef int sm_placeholder_threads_t;
