/* placeholder: being written */
typedef int sm_placeholder_lower_t;
