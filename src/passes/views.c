/* placeholder: being written */
typedef int sm_placeholder_views_t;
