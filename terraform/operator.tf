# The operator's Helm chart from this repository, with the images from the Artifact Registry repository and the
# Workload Identity annotations of both Kubernetes service accounts.

resource "kubernetes_namespace_v1" "trainer" {
  for_each = var.install_operator && var.create_trainer_namespaces ? toset(var.trainer_namespaces) : toset([])

  metadata {
    name = each.value
    labels = {
      # The operator's trainer pods meet the restricted profile (GKE >= 1.28 needs no privileged TPU pods).
      "pod-security.kubernetes.io/enforce" = var.trainer_namespace_pod_security
    }
  }

  depends_on = [module.system_pool]
}

resource "helm_release" "operator" {
  count = var.install_operator ? 1 : 0

  name             = var.operator_release_name
  chart            = "${path.module}/../charts/gemma-finetune-operator"
  namespace        = var.operator_namespace
  create_namespace = true
  atomic           = true
  wait             = true
  timeout          = 600

  values = [yamlencode(local.operator_values)]

  depends_on = [
    module.system_pool,
    kubernetes_namespace_v1.trainer,
    google_service_account_iam_member.operator_workload_identity,
    google_service_account_iam_member.trainer_workload_identity,
  ]
}
