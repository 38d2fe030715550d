# Identities. Nodes run as a minimal service account; pods reach Google APIs only through Workload Identity:
# the chart annotates each Kubernetes service account with iam.gke.io/gcp-service-account, and here each Google
# service account lets exactly that KSA (serviceAccount:PROJECT.svc.id.goog[NAMESPACE/KSA]) impersonate it.

# --- Nodes --------------------------------------------------------------------------------------------------------

resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.cluster_name}-nodes"
  display_name = "GKE nodes of ${var.cluster_name}"

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

# Nodes pull the operator and trainer images from the repository.
resource "google_artifact_registry_repository_iam_member" "nodes_reader" {
  project    = var.project_id
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.nodes.email}"
}

# --- Trainer: reads data, writes checkpoints, adapters and progress ------------------------------------------------

resource "google_service_account" "trainer" {
  project      = var.project_id
  account_id   = "${var.cluster_name}-trainer"
  display_name = "gemma-finetune-operator trainer pods"

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "trainer_object_user" {
  bucket = google_storage_bucket.runs.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.trainer.email}"
}

resource "google_service_account_iam_member" "trainer_workload_identity" {
  for_each = toset(var.trainer_namespaces)

  service_account_id = google_service_account.trainer.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${each.value}/${var.trainer_ksa_name}]"

  depends_on = [google_container_cluster.this]
}

# --- Serving: vLLM pods read the served run's adapter (Cloud Storage FUSE CSI volume), nothing else -------------

resource "google_service_account" "server" {
  project      = var.project_id
  account_id   = "${var.cluster_name}-server"
  display_name = "gemma-finetune-operator serving pods"

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "server_object_viewer" {
  bucket = google_storage_bucket.runs.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.server.email}"
}

resource "google_service_account_iam_member" "server_workload_identity" {
  for_each = toset(var.trainer_namespaces)

  service_account_id = google_service_account.server.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${each.value}/${var.serving_ksa_name}]"

  depends_on = [google_container_cluster.this]
}

# --- Operator: reads progress.json of running trainers -------------------------------------------------------------

resource "google_service_account" "operator" {
  project      = var.project_id
  account_id   = "${var.cluster_name}-operator"
  display_name = "gemma-finetune-operator"

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "operator_object_viewer" {
  bucket = google_storage_bucket.runs.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.operator.email}"
}

resource "google_service_account_iam_member" "operator_workload_identity" {
  service_account_id = google_service_account.operator.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.operator_namespace}/${var.operator_ksa_name}]"

  depends_on = [google_container_cluster.this]
}
