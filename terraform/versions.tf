terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.17, < 8"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 7.17, < 8"
    }
    helm = {
      source  = "hashicorp/helm"
      version = ">= 3.0, < 4"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.31, < 3"
    }
  }
}
