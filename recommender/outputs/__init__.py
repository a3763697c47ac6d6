"""What leaves the clinic with a plan: the patient handout and the FHIR CarePlan."""
