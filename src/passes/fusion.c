/* placeholder: being written */
typedef int sm_placeholder_fusion_t;
