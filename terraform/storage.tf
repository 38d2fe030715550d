# Bucket for data sets, checkpoints, adapters and progress files: uniform access (IAM only), no public access,
# versioning (a checkpoint overwritten or rotated out stays recoverable for noncurrent_version_retention_days),
# optional CMEK.

data "google_storage_project_service_account" "gcs" {
  count   = var.bucket_kms_key_name != "" ? 1 : 0
  project = var.project_id
}

resource "google_kms_crypto_key_iam_member" "bucket_cmek" {
  count = var.bucket_kms_key_name != "" ? 1 : 0

  crypto_key_id = var.bucket_kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs[0].email_address}"
}

resource "google_storage_bucket" "runs" {
  project  = var.project_id
  name     = local.bucket_name
  location = local.bucket_location
  labels   = local.labels

  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  versioning {
    enabled = true
  }

  # Overwritten and deleted versions (rotated-out checkpoints among them) go after N days.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # Objects under the listed checkpoint prefixes expire N days after they were written. The rule exists only
  # when prefixes are listed: a rule without matches_prefix would match every object.
  dynamic "lifecycle_rule" {
    for_each = length(var.checkpoint_prefixes) > 0 ? [var.checkpoint_prefixes] : []
    content {
      condition {
        age            = var.checkpoint_retention_days
        matches_prefix = lifecycle_rule.value
      }
      action {
        type = "Delete"
      }
    }
  }

  # Uploads of large checkpoint shards that a preempted pod left unfinished.
  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  dynamic "encryption" {
    for_each = var.bucket_kms_key_name != "" ? [var.bucket_kms_key_name] : []
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.bucket_cmek]
}
