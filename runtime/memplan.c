/* placeholder: being written */
typedef int sm_placeholder_memplan_t;
