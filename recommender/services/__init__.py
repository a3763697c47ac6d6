"""The service layer, by responsibility; :class:`recommender.service.ClinicService` joins them."""
