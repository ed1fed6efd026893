from django.contrib import admin

from .models import Delivery, Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("partner", "uniq_id", "order_number", "click_id", "order_status", "revenue",
                    "commission_fee", "currency", "created_at")
    list_filter = ("partner", "order_status", "currency")
    show_full_result_count = False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "partner", "method", "outcome", "received_at", "order")
    list_filter = ("outcome", "partner")
    raw_id_fields = ("order",)
    show_full_result_count = False
