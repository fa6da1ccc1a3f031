from django.urls import path

from teamwork import views

app_name = "teamwork"

urlpatterns = [
    path("people/<int:person_id>/timeline/", views.timeline, name="timeline"),
    path("people/<int:person_id>/family-timeline/", views.timeline_family, name="timeline_family"),
    path("people/<int:person_id>/contacts/", views.contact_new, name="contact_new"),
    path("people/<int:person_id>/tasks/new/", views.task_new, name="task_new"),
    path("people/<int:person_id>/messages/new/", views.message_new, name="message_new"),
    path("people/<int:person_id>/meetings/new/", views.meeting_new, name="meeting_new"),
    path("tasks/", views.my_tasks, name="my_tasks"),
    path("tasks/<int:task_id>/", views.task_update, name="task_update"),
    path("meetings/<int:meeting_id>/", views.meeting_detail, name="meeting"),
    path("meetings/<int:meeting_id>/calendar.ics", views.meeting_calendar, name="meeting_calendar"),
    path("meetings/<int:meeting_id>/change/", views.meeting_edit, name="meeting_edit"),
    path("meetings/reply/<str:token>/", views.meeting_reply_link, name="meeting_reply"),
    path("reminders/<str:token>/", views.reminder_link, name="reminder_answer"),
]
