# Docker repository for the operator and trainer images: REGION-docker.pkg.dev/PROJECT/REPO/NAME.

resource "google_artifact_registry_repository" "images" {
  project       = var.project_id
  location      = var.region
  repository_id = var.registry_repository_id
  format        = "DOCKER"
  description   = "gemma-finetune-operator: operator and trainer images"
  labels        = local.labels
  kms_key_name  = var.registry_kms_key_name != "" ? var.registry_kms_key_name : null

  depends_on = [google_project_service.apis]
}
